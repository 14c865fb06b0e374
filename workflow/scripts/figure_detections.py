from _common import start_log

import pandas as pd

from atomloc.analysis.tables import hardest_and_easiest, split_rows
from atomloc.io.positions import read_positions
from atomloc.io.series import read_series
from atomloc.plotting import plot_detection_panels

log = start_log(snakemake)  # noqa: F821
method = snakemake.wildcards.method
per_image = pd.read_csv(snakemake.input.per_image)
rows = split_rows(per_image, dict(snakemake.params.splits), "test")
series_paths = dict(zip(snakemake.params.datasets, snakemake.input.series))
position_paths = dict(zip(snakemake.params.datasets, snakemake.input.positions))
panels = []
for kind, (dataset, frame) in zip(("hardest", "easiest"), hardest_and_easiest(rows)):
    series = read_series(series_paths[dataset])
    table = read_positions(position_paths[dataset])
    pred = table.loc[table["frame"] == frame, ["x", "y"]].to_numpy()
    ref = series.truth.positions(frame) if series.truth is not None else None
    score = rows[(rows.method == method) & (rows.dataset == dataset) & (rows.frame == frame)]
    f1 = f", F1 {score.f1.iloc[0]:.3f}" if len(score) else ""
    panels.append({"image": series.frames[frame], "pred_xy": pred, "ref_xy": ref, "ref_label": "truth",
                   "title": f"{kind}: {dataset} frame {frame}, {len(pred)} detections{f1}"})
    log.info("%s image: %s frame %d", kind, dataset, frame)
plot_detection_panels(panels, [snakemake.output.png, snakemake.output.pdf],
                      suptitle=f"{method}: + detected, o truth (hardest / easiest test image by mean F1 over methods)")
