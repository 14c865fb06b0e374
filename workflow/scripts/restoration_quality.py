from _common import start_log

import numpy as np
import pandas as pd

from atomloc.analysis.restoration import RAW, background_free_truth, quality_table, restoration_quality
from atomloc.analysis.sweeps import interval_text
from atomloc.analysis.tables import write_table
from atomloc.core.errors import AtomlocInputError
from atomloc.core.geometry import nearest_neighbour_spacing
from atomloc.io.series import read_series
from atomloc.locate import locate, restore
from atomloc.plotting import plot_detection_panels
from atomloc.simulate import SeriesSpec, simulate_series

log = start_log(snakemake)  # noqa: F821
out, params = snakemake.output, snakemake.params
restorations = list(params.restorations)
figure = params.figure
frames = pd.DataFrame(params.frames)
rows, figure_frame = [], None
for path, dataset, entry, kinds in zip(snakemake.input.series, params.datasets, params.specs, params.truth_kinds):
    grid = frames[(frames["dataset"] == dataset)].sort_values("frame")
    if not grid["nominal_pixel"].any():
        continue
    spec = SeriesSpec.from_mapping(entry, name=f"datasets.{dataset}")
    if spec.ramp_fraction or spec.contamination_fraction or spec.contamination_blobs:
        raise AtomlocInputError(f"datasets.{dataset}: the background-free truth needs no ramp and no contamination")
    series = simulate_series(spec, return_clean=True, name=dataset)
    if not np.array_equal(read_series(path).frames, series.frames):
        raise AtomlocInputError(f"{path}: its frames differ from a new simulation of its settings")
    doses = grid["dose_e_per_A2"].to_numpy()
    focus = np.nonzero(grid["defocus_nm"].to_numpy() == 0.0)[0]
    scored = np.isin(series.truth.kind, kinds)
    spacing = nearest_neighbour_spacing(np.column_stack([series.truth.x[0][scored], series.truth.y[0][scored]]))
    no_bg = np.stack([background_free_truth(series.clean[k], doses[k], spec.pixel_size_pm, spec.background_fraction)
                      for k in focus])
    table = restoration_quality(series.frames[focus], series.clean[focus], no_bg, spacing, restorations,
                                lambda image, name, s: restore(image, name, s))
    table["frame"] = focus[table["frame"].to_numpy()]
    table["material"] = grid["material"].iloc[0]
    table["dose_e_per_A2"] = doses[table["frame"].to_numpy()]
    rows.append(table)
    log.info("%s: %d in-focus frames at %.2f px spacing", dataset, len(focus), spacing)
    if figure_frame is None:  # the first sweep: its in-focus frame nearest the figure dose
        k = focus[np.argmin(np.abs(np.log(doses[focus] / figure["dose_e_per_A2"])))]
        figure_frame = (dataset, series.frames[k], doses[k], spacing)
rows = pd.concat(rows, ignore_index=True)
summary = quality_table(rows, by=("material", "restoration", "truth", "dose_e_per_A2"), n_boot=params.n_boot,
                        seed=params.seed)
md = summary[["material", "restoration", "truth", "dose_e_per_A2", "n_images"]].copy()
md["PSNR (dB)"] = [interval_text(a, b, c, 2) for a, b, c in zip(summary.psnr_db_mean, summary.psnr_db_lo,
                                                               summary.psnr_db_hi)]
md["SSIM"] = [interval_text(a, b, c, 3) for a, b, c in zip(summary.ssim_mean, summary.ssim_lo, summary.ssim_hi)]
md["s / frame"] = summary["time_s_per_frame"].map(lambda v: f"{v:.2f}")
write_table(out.csv, out.md, summary, "Restoration quality: PSNR and SSIM against the noise-free truth, in focus",
            [f"In-focus frames of each sweep's nominal pixel size (seeds of each dose); restorations: "
             f"{', '.join(restorations)}; {RAW}: the raw frame.",
             "truth no_noise: the expected image (denoisers); no_background: the columns alone (restorations that "
             "remove the background: denoise_bg, bg and chains holding them). Data range: the truth's "
             "peak-to-peak. Intervals: 95 % percentile bootstrap over the frames.",
             "The learned restorations are the weights shipped in the package (release.yaml), not trained by this run."],
            markdown=md)

dataset, image, dose, spacing = figure_frame
method = figure["method"]
panels = []
for name in [None, *restorations]:
    shown = image if name is None else restore(image, name, spacing)
    found = locate(image, method if name is None else f"{method}@{name}", spacing_px=spacing)
    panels.append({"image": shown, "pred_xy": found[["x", "y"]].to_numpy(),
                   "title": f"{name or 'raw'}: {len(found)} columns by {method}"})
plot_detection_panels(panels, [out.figure, out.figure_pdf],
                      suptitle=f"{dataset}, {dose:g} e/Å², in focus: image -> restored -> detections "
                               f"({method}@restoration, kept where the raw image backs them)")
log.info("\n%s", md.to_string(index=False))
