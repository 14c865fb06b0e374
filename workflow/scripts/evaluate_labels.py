from _common import start_log

from atomloc.analysis.evaluate import evaluate_labels, frame_column_crlb, frame_crlb
from atomloc.io.files import atomic_path
from atomloc.io.positions import read_positions
from atomloc.io.series import read_series

log = start_log(snakemake)  # noqa: F821
series = read_series(snakemake.input.series)
labels = read_positions(snakemake.input.labels)
reference_index = int(read_series(snakemake.input.aligned).attrs["reference_index"])
table = evaluate_labels(series, reference_index, labels, **snakemake.params.scoring)
with atomic_path(snakemake.output.metrics) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
log.info("label F1 vs truth per frame: %s", table["f1"].round(4).tolist() if len(table) else "no truth")
crlb = frame_crlb(series, labels, snakemake.params.scoring.get("truth_kinds"), snakemake.params.transfer)
with atomic_path(snakemake.output.crlb) as tmp:
    crlb.to_csv(tmp, index=False, float_format="%.6g")
log.info("Cramér–Rao bound per frame (pm): %s", crlb["crlb_pm"].round(2).tolist())
columns = frame_column_crlb(series, snakemake.params.scoring.get("truth_kinds"))
with atomic_path(snakemake.output.column_crlb) as tmp:
    columns.to_csv(tmp, index=False, float_format="%.6g")
log.info("per-column bounds: %d columns over %d frames", len(columns), series.n_frames)
