from _common import start_log

from atomloc.io import read_series, write_positions
from atomloc.label import label_reference_frame, transfer_labels

log = start_log(snakemake)  # noqa: F821
aligned = read_series(snakemake.input.aligned)
ref = int(aligned["attrs"]["reference_index"])
labels = label_reference_frame(aligned["frames"][ref], snakemake.params.method, snakemake.params.params,
                               name=f"{snakemake.input.aligned}[frame {ref}]")
log.info("%d labels on reference frame %d by %s", len(labels), ref, snakemake.params.method)
write_positions(snakemake.output.labels, transfer_labels(labels, aligned["drift_px"]))
