from _common import load_method, start_log

from pathlib import Path

import pandas as pd

from atomloc.analysis.evaluate import evaluate_series
from atomloc.io.files import atomic_path
from atomloc.io.positions import write_positions
from atomloc.io.series import read_series
from atomloc.locate.registry import locate_series

log = start_log(snakemake)  # noqa: F821
method = snakemake.params.method
load_method(method, snakemake.params.params, snakemake.threads)  # heavy imports and the model: untimed
crlb = pd.read_csv(snakemake.input.crlb)
frame_crlb = pd.read_csv(snakemake.input.frame_crlb)
out_dir = Path(snakemake.output.positions)
out_dir.mkdir(parents=True, exist_ok=True)
tables = []
for path, dataset, scoring in zip(snakemake.input.series, snakemake.params.datasets, snakemake.params.scoring):
    series = read_series(path)
    positions, seconds = locate_series(series.frames, method, pixel_size_pm=series.pixel_size_pm, name=path,
                                       **snakemake.params.params)
    write_positions(out_dir / f"{dataset}.csv", positions)
    table = evaluate_series(series, None, positions, seconds, crlb=frame_crlb[frame_crlb["dataset"] == dataset],
                            column_crlb=crlb[crlb["dataset"] == dataset], **scoring)
    log.info("%s: %d frames in %.1f s, F1 %s", dataset, series.n_frames, sum(seconds), table["f1"].round(3).tolist())
    tables.append(table)
table = pd.concat(tables, ignore_index=True)
table.insert(0, "method", method)
with atomic_path(snakemake.output.metrics) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
