from _common import start_log

import pandas as pd

from atomloc.io.series import read_series
from atomloc.plotting import plot_point_maps

log = start_log(snakemake)  # noqa: F821
series = read_series(snakemake.input.series)
columns = pd.read_csv(snakemake.input.columns)
truth = columns[columns.method == "truth"]
panels = [{"xy": truth[["x", "y"]].to_numpy(), "values": truth["true_hydrostatic"], "title": "applied (truth)"}]
for name, g in columns.groupby("method", sort=True):
    panels.append({"xy": g[["x", "y"]].to_numpy(), "values": g["hydrostatic"],
                   "title": "truth positions" if name == "truth" else name})
plot_point_maps(panels, [snakemake.output.png, snakemake.output.pdf], series.shape_px,
                label="hydrostatic strain (exx + eyy) / 2",
                suptitle=f"{snakemake.wildcards.dataset}: applied field {series.attrs.get('strain_field', 'none')}")
