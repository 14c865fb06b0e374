from _common import start_log

from atomloc.evaluate import evaluate_labels, frame_crlb
from atomloc.io import atomic_path

log = start_log(snakemake)  # noqa: F821
table = evaluate_labels(snakemake.input.series, snakemake.input.aligned, snakemake.input.labels,
                        **snakemake.params.scoring)
with atomic_path(snakemake.output.metrics) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
log.info("label F1 vs truth per frame: %s", table["f1"].round(4).tolist() if len(table) else "no truth")
crlb = frame_crlb(snakemake.input.series, snakemake.input.labels, snakemake.params.scoring.get("truth_kinds"),
                  snakemake.params.transfer)
with atomic_path(snakemake.output.crlb) as tmp:
    crlb.to_csv(tmp, index=False, float_format="%.6g")
log.info("Cramér–Rao bound per frame (pm): %s", crlb["crlb_pm"].round(2).tolist())
