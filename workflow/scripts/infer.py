from _common import start_log

import json

from atomloc.io import atomic_path, read_series, write_positions
from atomloc.methods import get_method, locate_series

log = start_log(snakemake)  # noqa: F821
method = snakemake.params.method
series = read_series(snakemake.input.series)
get_method(method).load()  # optional heavy imports happen outside the timed calls
if method in ("atomid", "atomsegnet"):
    import torch

    from atomloc.nets.locate import load_model

    torch.set_num_threads(snakemake.threads)
    load_model(snakemake.params.params.get("model", "auto"), method)  # so is loading the model
positions, seconds = locate_series(series["frames"], method, pixel_size_pm=series["attrs"]["pixel_size_pm"],
                                   name=snakemake.input.series, **snakemake.params.params)
counts = positions.groupby("frame").size().reindex(range(len(seconds)), fill_value=0).tolist()
for k, (n, s) in enumerate(zip(counts, seconds)):
    log.info("frame %d: %d positions by %s in %.3f s", k, n, method, s)
write_positions(snakemake.output.positions, positions)
with atomic_path(snakemake.output.timing) as tmp:
    tmp.write_text(json.dumps({"method": method, "seconds": seconds, "n_positions": counts}))
