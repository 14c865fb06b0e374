from _common import start_log

import pandas as pd

from atomloc.io.positions import write_positions
from atomloc.io.series import read_series
from atomloc.series.label import label_reference_frame, transfer_labels

log = start_log(snakemake)  # noqa: F821
aligned = read_series(snakemake.input.aligned)
ref = int(aligned.attrs["reference_index"])
labels = label_reference_frame(aligned.frames[ref], snakemake.params.method, snakemake.params.params,
                               name=f"{snakemake.input.aligned}[frame {ref}]")
log.info("%d labels on reference frame %d by %s", len(labels), ref, snakemake.params.method)
blocks = [transfer_labels(labels, aligned.drift_px, transfer="rigid")]
if aligned.attrs["alignment"] == "nonrigid":
    blocks.append(transfer_labels(labels, aligned.drift_px, aligned.arrays["row_shift_px"], transfer="nonrigid"))
write_positions(snakemake.output.labels, pd.concat(blocks, ignore_index=True))
