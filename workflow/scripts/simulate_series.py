from _common import start_log

from atomloc.io import write_series
from atomloc.simulate import SeriesSpec, peak_offset_medians, simulate_series

log = start_log(snakemake)  # noqa: F821 (snakemake is injected by the script directive)
spec = SeriesSpec.from_mapping(snakemake.params.spec, name=f"datasets.{snakemake.wildcards.dataset}")
log.info("spec %s", spec)
series = simulate_series(spec)
write_series(snakemake.output.series, series["frames"], series["attrs"],
             arrays={key: series[key] for key in ("dose_e_per_A2", "drift_px", "scan_shift_px", "scan_jitter_px",
                                                  "defocus_nm",
                                                  "astigmatism_nm", "astigmatism_angle_deg")},
             truth=series["truth"])
medians = peak_offset_medians(series)
log.info("truth vs noise-free peaks: median %.3f px over %d columns; %.3f px over the %d of %d frames within "
         "the depth of field (|defocus| <= %.2f nm)", medians["all_px"], medians["n_offsets"],
         medians["in_focus_px"], medians["n_in_focus"], medians["n_frames"], medians["half_dof_nm"])
log.info("wrote %d frames of %s, %d columns, doses %s e/A^2", len(series["frames"]), spec.shape_px,
         series["truth"]["x"].shape[1], series["dose_e_per_A2"].round(0).tolist())
