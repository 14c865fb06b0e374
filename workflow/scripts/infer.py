from _common import load_method, start_log

import json

from atomloc.io.files import atomic_path
from atomloc.io.positions import write_positions
from atomloc.io.series import read_series
from atomloc.locate.registry import locate_series

log = start_log(snakemake)  # noqa: F821
method = snakemake.params.method
series = read_series(snakemake.input.series)
load_method(method, snakemake.params.params, snakemake.threads)  # heavy imports and the model: untimed
positions, seconds = locate_series(series.frames, method, pixel_size_pm=series.pixel_size_pm,
                                   name=snakemake.input.series, **snakemake.params.params)
counts = positions.groupby("frame").size().reindex(range(len(seconds)), fill_value=0).tolist()
for k, (n, s) in enumerate(zip(counts, seconds)):
    log.info("frame %d: %d positions by %s in %.3f s", k, n, method, s)
write_positions(snakemake.output.positions, positions)
with atomic_path(snakemake.output.timing) as tmp:
    tmp.write_text(json.dumps({"method": method, "seconds": seconds, "n_positions": counts}))
