from _common import start_log

import numpy as np

from atomloc.analysis.ptycho import ptycho_benchmark
from atomloc.io.files import atomic_path

log = start_log(snakemake)  # noqa: F821
p, out = snakemake.params, snakemake.output
s = dict(p.settings)
try:
    import torch

    torch.set_num_threads(snakemake.threads)
except ImportError:
    pass
result = ptycho_benchmark(snakemake.wildcards.ptycho_material, doses=s["doses"], seeds=s["seeds"],
                          scan_step_A=s["scan_step_A"], min_size_A=s["min_size_A"], n_iterations=s["n_iterations"],
                          batch_size=s["batch_size"], learning_rate=s["learning_rate"], locators=s["locators"],
                          seed=s["seed"], device=p.device, log=log, n_workers=snakemake.threads)
with atomic_path(out.rows) as tmp:
    result["rows"].to_csv(tmp, index=False, float_format="%.6g")
# The first noise draw of every dose: each modality's image, its truth and pixel size (the figure).
arrays = {}
for index, (dose, ex) in enumerate(result["examples"].items()):  # keyed by the dose's index, the dose stored
    arrays[f"{index:03d}__dose"] = np.asarray(dose, dtype=np.float64)
    for modality, image in ex["images"].items():
        xy, light = ex["truth"][modality]
        key = f"{index:03d}__{modality}"
        arrays.update({f"{key}__image": np.asarray(image, dtype=np.float32), f"{key}__truth_xy": xy,
                       f"{key}__light": light, f"{key}__sampling_A": np.asarray(ex["sampling_A"][modality])})
with atomic_path(out.examples) as tmp:
    np.savez_compressed(tmp, **arrays)
log.info("%d rows; simulation %.1f s, device %s", len(result["rows"]), result["scan"]["simulate_s"],
         result["scan"]["device"])
