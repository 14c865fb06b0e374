from _common import start_log

from atomloc.io.series import write_series
from atomloc.simulate import SeriesSpec, peak_offset_medians, simulate_series

log = start_log(snakemake)  # noqa: F821 (snakemake is injected by the script directive)
spec = SeriesSpec.from_mapping(snakemake.params.spec, name=f"datasets.{snakemake.wildcards.dataset}")
log.info("spec %s", spec)
series = simulate_series(spec, name=snakemake.wildcards.dataset)
write_series(snakemake.output.series, series)
medians = peak_offset_medians(series)
log.info("truth vs noise-free peaks: median %.3f px over %d columns; %.3f px over the %d of %d frames within "
         "the depth of field (|defocus| <= %.2f nm)", medians["all_px"], medians["n_offsets"],
         medians["in_focus_px"], medians["n_in_focus"], medians["n_frames"], medians["half_dof_nm"])
log.info("wrote %d frames of %s, %d columns, doses %s e/A^2", series.n_frames, spec.shape_px,
         series.truth.x.shape[1], series.dose_e_per_A2.round(0).tolist())
