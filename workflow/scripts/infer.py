from _common import start_log

import json
import time

from atomloc.io import atomic_path, read_series, write_positions
from atomloc.methods import locate

log = start_log(snakemake)  # noqa: F821
w = snakemake.wildcards
series = read_series(snakemake.input.series)
frame = int(w.frame)
if frame >= len(series["frames"]):
    raise ValueError(f"{snakemake.input.series}: frame {frame} requested but the series has {len(series['frames'])}")
t0 = time.perf_counter()
positions = locate(series["frames"][frame], w.method, pixel_size_pm=series["attrs"]["pixel_size_pm"],
                   name=f"{snakemake.input.series}[frame {frame}]", **snakemake.params.params)
seconds = time.perf_counter() - t0
log.info("%d positions by %s in %.3f s", len(positions), w.method, seconds)
write_positions(snakemake.output.positions, positions)
with atomic_path(snakemake.output.timing) as tmp:
    tmp.write_text(json.dumps({"method": w.method, "seconds": seconds, "n_positions": len(positions)}))
