from _common import start_log

from atomloc.io.series import read_series
from atomloc.plotting import plot_series_overview

log = start_log(snakemake)  # noqa: F821
series = read_series(snakemake.input.series)
attrs = series.attrs
plot_series_overview(series, [snakemake.output.png, snakemake.output.pdf],
                     title=f"{snakemake.wildcards.dataset}: {attrs.get('material', 'real data')}, "
                           f"{attrs['pixel_size_pm']:.4g} pm pixels, {series.n_frames} frames")
