from _common import start_log

import numpy as np

from atomloc.align import align_series
from atomloc.io import read_series, write_series

log = start_log(snakemake)  # noqa: F821
series = read_series(snakemake.input.series)
result = align_series(series["frames"], upsample_factor=snakemake.params.upsample_factor,
                      smooth_sigma_px=snakemake.params.smooth_sigma_px)
ref = result["reference_index"]
log.info("frame quality %s -> reference frame %d", np.round(result["quality"], 3).tolist(), ref)
arrays = {"drift_px": result["drift_px"], "quality": result["quality"]}
if "drift_px" in series:
    true = series["drift_px"] - series["drift_px"][ref]
    arrays["drift_error_px"] = result["drift_px"] - true
    log.info("drift error vs truth: max %.4f px", float(np.abs(arrays["drift_error_px"]).max()))
write_series(snakemake.output.aligned, result["aligned"], {**series["attrs"], "reference_index": ref},
             arrays=arrays)
