from _common import start_log

import numpy as np

from atomloc.analysis.chemistry import field_chemistry
from atomloc.core.errors import AtomlocInputError
from atomloc.io.files import atomic_path
from atomloc.io.images import read_image
from atomloc.io.positions import write_positions
from atomloc.locate import locate
from atomloc.plotting import plot_chemistry_columns

log = start_log(snakemake)  # noqa: F821
p, out = snakemake.params, snakemake.output
entry = p.entry
haadf = read_image(snakemake.input.haadf)
elements, maps = list(entry["edx"]), []
for element, path in entry["edx"].items():
    image = read_image(path)
    if image.shape != haadf.shape:
        raise AtomlocInputError(f"{path}: {image.shape} pixels, the HAADF {snakemake.input.haadf} has {haadf.shape}")
    if (image < 0).any():
        raise AtomlocInputError(f"{path}: an EDX map must hold counts >= 0")
    maps.append(image)
located = locate(haadf, p.locator, pixel_size_pm=entry["pixel_size_pm"], name=str(snakemake.input.haadf))
fused, columns = field_chemistry(haadf, np.stack(maps), elements, x_px=located["x"], y_px=located["y"],
                                 sites=entry["sites"], dopants=entry["dopants"], dopant_host=entry["dopant_host"],
                                 vacancy_element=entry["vacancy_element"],
                                 edx_delocalisation_A=entry["edx_delocalisation_A"],
                                 pixel_size_pm=entry["pixel_size_pm"], gamma=p.gamma, n_iter=p.n_iter)
write_positions(out.columns, columns)
with atomic_path(out.maps) as tmp:
    with open(tmp, "wb") as f:
        np.save(f, fused.astype(np.float32))
plot_chemistry_columns(haadf, fused, elements, columns, [out.figure, out.figure_pdf], title=entry["name"])
log.info("%s: %d columns: %s", entry["name"], len(columns), columns["composition"].value_counts().to_dict())
