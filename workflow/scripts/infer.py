from _common import start_log

import json
import time

from atomloc.io import atomic_path, read_frame, write_positions
from atomloc.methods import get_method, locate

log = start_log(snakemake)  # noqa: F821
w = snakemake.wildcards
method = snakemake.params.method
frame = int(w.frame)
image, attrs = read_frame(snakemake.input.series, frame)
get_method(method).load()  # optional heavy imports happen outside the timed call
if method in ("atomid", "atomsegnet"):
    import torch

    from atomloc.nets.locate import load_model

    torch.set_num_threads(snakemake.threads)
    load_model(snakemake.params.params.get("model", "auto"), method)  # so is loading the model
t0 = time.perf_counter()
positions = locate(image, method, pixel_size_pm=attrs["pixel_size_pm"],
                   name=f"{snakemake.input.series}[frame {frame}]", **snakemake.params.params)
seconds = time.perf_counter() - t0
log.info("%d positions by %s in %.3f s", len(positions), method, seconds)
write_positions(snakemake.output.positions, positions)
with atomic_path(snakemake.output.timing) as tmp:
    tmp.write_text(json.dumps({"method": method, "seconds": seconds, "n_positions": len(positions)}))
