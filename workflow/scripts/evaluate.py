from _common import start_log

from atomloc.evaluate import evaluate_series
from atomloc.io import atomic_path

log = start_log(snakemake)  # noqa: F821
table = evaluate_series(snakemake.input.series, snakemake.input.labels, snakemake.input.positions,
                        snakemake.input.timing, transfer=snakemake.params.transfer, **snakemake.params.scoring)
table.insert(0, "method", snakemake.wildcards.method)
with atomic_path(snakemake.output.metrics) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
log.info("F1 vs truth per frame: %s", table.loc[table.reference == "truth", "f1"].round(4).tolist())
