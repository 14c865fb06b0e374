from _common import start_log

import numpy as np

from atomloc.analysis.chemistry import chemistry_benchmark
from atomloc.io.files import atomic_path
from atomloc.io.multimodal import write_fields

log = start_log(snakemake)  # noqa: F821
p, out = snakemake.params, snakemake.output
s = dict(p.settings)
result = chemistry_benchmark(p.dataset, counts_per_pixel=s["counts_per_pixel"], train_fields=s["train_fields"],
                             test_fields=s["test_fields"], seed=s["seed"], lambda_edx=s["lambda_edx"],
                             lambda_tv=s["lambda_tv"], blur_sigmas_px=s["blur_sigma_px"], locator=s["locator"],
                             peer=p.peer, peer_lambda_edx=s["peer_lambda_edx"], peer_lambda_tv=s["peer_lambda_tv"],
                             column_sigmas_px=s["column_sigma_px"], log=log, gamma=s["gamma"], n_iter=s["n_iter"])
for key, table in (("quality", result["quality"]), ("columns", result["chemistry"]), ("tuning", result["tuning"]),
                   ("seconds", result["seconds"])):
    with atomic_path(out[key]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
# The first test field of every count level, with each method's maps and the located columns (the figure).
fields = {}
for counts, (fld, maps, xy) in result["example"].items():
    fields[f"counts_{counts:g}"] = fld
    fields[f"counts_{counts:g}_maps"] = {"haadf": fld["haadf"], "edx": np.stack(list(maps.values())),
                                         "elements": fld["elements"], "attrs": {"methods": ",".join(maps)},
                                         "columns": {"x": xy[:, 0], "y": xy[:, 1]}}
write_fields(out.examples, fields)
log.info("%d quality rows, %d column-chemistry rows", len(result["quality"]), len(result["chemistry"]))
