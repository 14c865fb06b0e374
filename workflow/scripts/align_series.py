from _common import start_log

import numpy as np

from atomloc.io.series import Series, read_series, write_series
from atomloc.series.align import align_series, transfer_error_px

log = start_log(snakemake)  # noqa: F821
series = read_series(snakemake.input.series)
result = align_series(series.frames, **snakemake.params.align)
ref = result["reference_index"]
log.info("frame quality %s -> reference frame %d", np.round(result["quality"], 3).tolist(), ref)
arrays = {"drift_px": result["drift_px"], "row_shift_px": result["row_shift_px"], "quality": result["quality"]}
if series.truth is not None:
    shape = series.shape_px
    tx, ty = series.truth.x, series.truth.y
    arrays["rigid_error_px"] = transfer_error_px(tx, ty, ref, result["drift_px"], None, shape)
    log.info("rigid transfer error vs truth (RMS px per frame): %s", np.round(arrays["rigid_error_px"], 3).tolist())
    if result["alignment"] == "nonrigid":
        arrays["nonrigid_error_px"] = transfer_error_px(tx, ty, ref, result["drift_px"], result["row_shift_px"], shape)
        log.info("non-rigid transfer error vs truth (RMS px per frame): %s",
                 np.round(arrays["nonrigid_error_px"], 3).tolist())
write_series(snakemake.output.aligned, Series(result["aligned"], {**series.attrs, "reference_index": ref,
                                                                   "alignment": result["alignment"]}, arrays))
