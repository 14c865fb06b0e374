from _common import start_log

from atomloc.analysis.evaluate import strain_benchmark
from atomloc.io.files import atomic_path
from atomloc.io.positions import read_positions
from atomloc.io.series import read_series

log = start_log(snakemake)  # noqa: F821
series = read_series(snakemake.input.series)
positions = {m: read_positions(p) for m, p in zip(snakemake.params.methods, snakemake.input.positions)}
summary, columns = strain_benchmark(series, positions, **snakemake.params.strain)
summary.insert(0, "dataset", snakemake.wildcards.dataset)
summary.insert(1, "strain_field", series.attrs.get("strain_field", "none"))
for out, table in ((snakemake.output.summary, summary), (snakemake.output.columns, columns)):
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
log.info("strain errors:\n%s", summary.to_string(index=False))
