from _common import start_log

from atomloc.io.series import import_series, write_series

log = start_log(snakemake)  # noqa: F821
series = import_series(snakemake.input.files, pixel_size_pm=snakemake.params.pixel_size_pm)
write_series(snakemake.output.series, series)
log.info("read %d frames of %s at %.4g pm/px from %s", series.n_frames, series.shape_px, series.pixel_size_pm,
         ", ".join(snakemake.input.files))
