from _common import start_log

import numpy as np
import pandas as pd

from atomloc.analysis.evaluate import label_errors_pm
from atomloc.analysis.tables import read_table_or_empty, split_rows
from atomloc.io.positions import read_positions
from atomloc.io.series import read_series
from atomloc.plotting import plot_curves, plot_point_maps, plot_rmse_vs_crlb, plot_training_curves
from atomloc.series.label import select_transfer

log = start_log(snakemake)  # noqa: F821
out = snakemake.output


def paths(name):
    return [out[name], out[f"{name}_pdf"]]


splits = dict(snakemake.params.splits)
per_image = pd.read_csv(snakemake.input.per_image)
main = split_rows(per_image, splits, "test")

dose = read_table_or_empty(snakemake.input.dose)
if len(dose) and "dose_min_e_per_A2" in dose:
    dose = dose.assign(dose_mid=np.sqrt(dose.dose_min_e_per_A2 * dose.dose_max_e_per_A2))
    plot_curves(dose, "dose_mid", "f1_mean", "method", paths("f1_vs_dose"), "dose (e/Å², decile geometric mean)",
                "F1", logx=True, title="F1 per dose decile of the test frames")
else:
    plot_curves(pd.DataFrame({"x": [], "y": [], "g": []}), "x", "y", "g", paths("f1_vs_dose"), "dose", "F1",
                title="no test frame with a known dose")

scale = read_table_or_empty(snakemake.input.scale)
if len(scale):
    plot_curves(scale, "fov_nm", "f1_mean", "method", paths("f1_vs_fov"), "field of view (nm)", "F1",
                title="F1 vs field of view, fixed parameters")
else:
    plot_curves(pd.DataFrame({"x": [], "y": [], "g": []}), "x", "y", "g", paths("f1_vs_fov"), "field of view (nm)",
                "F1", title="no scale-split dataset in the config")

plot_rmse_vs_crlb(main, paths("rmse_vs_crlb"), title="test frames: RMSE of matched columns vs the Cramér–Rao bound")

histories = {p.split("/")[-1].replace("_history.csv", ""): pd.read_csv(p) for p in snakemake.input.histories}
plot_training_curves(histories, paths("training_curves"))

# Label errors: the reference labels vs the truth on the reference frame and on the frame they transfer worst to.
series = read_series(snakemake.input.series)
if series.truth is not None:
    ref_index = int(read_series(snakemake.input.aligned).attrs["reference_index"])
    labels = select_transfer(read_positions(snakemake.input.labels), snakemake.params.transfer)
    maps = [(frame, *label_errors_pm(series, labels, frame)) for frame in range(series.n_frames)]
    worst = max((m for m in maps if m[0] != ref_index), key=lambda m: np.nanmedian(m[2]), default=maps[ref_index])
    panels = [{"xy": m[1], "values": m[2], "title": f"frame {m[0]}{' (reference)' if m[0] == ref_index else ''}: "
                                                    f"median {np.nanmedian(m[2]):.1f} pm"}
              for m in (maps[ref_index], worst)]
    plot_point_maps(panels, paths("label_errors"), series.shape_px, cmap="viridis", symmetric=False,
                    label="label error |label - truth| (pm)",
                    suptitle=f"{snakemake.params.dataset}: reference-label error per true column (blank: no label)")
else:
    plot_point_maps([], paths("label_errors"), series.shape_px, suptitle="no truth: label errors unknown")
log.info("figures written")
