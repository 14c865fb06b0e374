from _common import start_log

from atomloc.evaluate import truth_positions
from atomloc.io import read_positions, read_series
from atomloc.plotting import plot_detections

log = start_log(snakemake)  # noqa: F821
w = snakemake.wildcards
series = read_series(snakemake.input.series)
frame = int(snakemake.params.frame)
table = read_positions(snakemake.input.positions)
pred = table.loc[table["frame"] == frame, ["x", "y"]].to_numpy()
ref = truth_positions(series, frame) if "truth" in series else None
plot_detections(series["frames"][frame], pred, snakemake.output.figure, ref_xy=ref, ref_label="truth",
                title=f"{w.method} on {snakemake.params.dataset} frame {frame}: {len(pred)} detections "
                      "(+ detected, o truth)")
