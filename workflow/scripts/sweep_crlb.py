from _common import start_log

import pandas as pd

from atomloc.analysis.evaluate import frame_column_crlb, frame_crlb
from atomloc.io.files import atomic_path
from atomloc.io.series import read_series

log = start_log(snakemake)  # noqa: F821
parts, frames = [], []
for path, dataset, scoring in zip(snakemake.input.series, snakemake.params.datasets, snakemake.params.scoring):
    series = read_series(path)
    table = frame_column_crlb(series, scoring["truth_kinds"])
    table.insert(0, "dataset", dataset)
    log.info("%s: per-column bound median %.3f px over %d columns of %d frames", dataset,
             table["crlb_px"].median(), len(table), series.n_frames)
    parts.append(table)
    frames.append(frame_crlb(series, None, scoring["truth_kinds"]).assign(dataset=dataset))
with atomic_path(snakemake.output.crlb) as tmp:
    pd.concat(parts, ignore_index=True).to_csv(tmp, index=False, float_format="%.6g")
with atomic_path(snakemake.output.frame_crlb) as tmp:
    pd.concat(frames, ignore_index=True).to_csv(tmp, index=False, float_format="%.6g")
