"""Milliseconds per image of AtomID-net (network + NMS head) vs scikit-image blob_log, in one run.

    python benchmarks/infer_speed.py                        # 1024 x 1024, the shipped weights
    python benchmarks/infer_speed.py --model PATH --size 512 --repeat 5

Both run on the same simulated 2H-MoS2 frame in this process: the reference is
``skimage.feature.blob_log`` with the ``log`` method's settings (the study's
max_sigma = sqrt(spacing), threshold 0.1) on the image scaled to 0-1; AtomID-net
is the whole ``atomid`` method (spacing estimate and resampling to the model's
inference spacing, normalisation, U-Net forward pass with its spacing branch,
max-pool proposals, NMS, sub-pixel refinement, the noise gate, column
intensities).  The other
heads on the same confidence map (LoG, DoG, DoH) and the network alone are
timed too, and "network + NMS head": what the target names, at the scale the
method runs the network (the image resampled to the model's inference
spacing, measured once outside the timing; no noise gate, no column
intensities), at the method's ``precision`` (``auto``: bfloat16 convolutions
on a CPU that runs them natively) and in float32.  "x blob_log" is each time over the reference's, so the ratio
carries over between machines.  The model is loaded before timing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from methods_speed import best_time  # noqa: E402  (benchmarks/ is the script's directory)
from skimage.feature import blob_log  # noqa: E402

from atomloc.analysis.metrics import score_detections  # noqa: E402
from atomloc.core.image import normalise  # noqa: E402
from atomloc.locate.classical import blob_sigma_range  # noqa: E402
from atomloc.locate.learned import load_model, network_scale, operating_confidence, run_at_scale  # noqa: E402
from atomloc.locate.nets.heads import nms_head  # noqa: E402
from atomloc.locate.nets.models import pick_device, predict, use_bf16  # noqa: E402
from atomloc.locate.registry import get_method, locate  # noqa: E402
from atomloc.locate.spacing import estimate_spacing  # noqa: E402
from atomloc.simulate.series import SeriesSpec, simulate_series  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="auto", help="atomid checkpoint (default: the weights shipped in the package; "
                   "results/models/atomid.pt for the default run's)")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--pixel-size-pm", type=float, default=20.0)
    p.add_argument("--dose", type=float, default=50000.0, help="dose, e/Å^2")
    p.add_argument("--repeat", type=int, default=3, help="calls per row; the shortest is kept")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    series = simulate_series(SeriesSpec(material="MoS2", shape_px=(args.size, args.size),
                                        pixel_size_pm=args.pixel_size_pm, n_frames=1, rotation_deg=13.0,
                                        dose_e_per_A2=(args.dose, args.dose), seed=1))
    image = series.frames[0].astype(np.float64)
    truth = np.column_stack([series.truth.x[0], series.truth.y[0]])
    net, meta = load_model(args.model, "atomid", with_meta=True)
    locate(image, "atomid", model=args.model)  # warm-up (first call allocates)

    spacing = estimate_spacing(image)
    lo, hi = blob_sigma_range(spacing)
    rows = []

    def row(name, seconds, pos):
        score = score_detections(pos[["x", "y"]].to_numpy(), truth, image.shape, pixel_size_pm=args.pixel_size_pm) \
            if pos is not None else None
        rows.append({"method": name, "ms_per_image": 1e3 * seconds,
                     "f1": score.f1 if score else np.nan, "rmse_pm": score.rmse_pm if score else np.nan})

    def ref():
        norm = normalise(image)
        blobs = blob_log(norm, min_sigma=lo, max_sigma=hi, num_sigma=10, threshold=0.1, exclude_border=False)
        return pd.DataFrame({"x": blobs[:, 1], "y": blobs[:, 0]})

    t_ref, pos = best_time(ref, args.repeat)
    row("skimage blob_log (reference)", t_ref, pos)
    factor = network_scale(image, "auto", meta, "auto")
    min_conf = operating_confidence(meta)
    nms = get_method("atomid").defaults  # the method's own NMS and precision settings
    # the method's precision (auto: bfloat16 on a CPU that runs it natively) and float32 beside it
    for precision in dict.fromkeys([nms["precision"], "fp32"]):
        arithmetic = "bf16" if use_bf16(net, pick_device(), precision) else "fp32"
        t, _ = best_time(lambda: predict(net, image, precision=precision), args.repeat)
        row(f"atomid network only (map + spacing), {precision} = {arithmetic}", t, None)

        def detect(scaled, _factor):
            maps, spacing = predict(net, scaled, precision=precision)
            return nms_head(maps[0], float(spacing[0]), min_conf, nms["window_px"], nms["iou_threshold"],
                            nms["subpixel"])

        t, pos = best_time(lambda: run_at_scale(image, factor, detect), args.repeat)
        row(f"atomid network + NMS head (image x {factor:.2f}, no gate), {precision} = {arithmetic}", t, pos)
    for head in ("nms", "log", "dog", "doh"):
        t, pos = best_time(lambda: locate(image, "atomid", model=args.model, head=head), args.repeat)
        row(f"atomid, {head.upper()} head", t, pos)
    table = pd.DataFrame(rows)
    table.insert(2, "x_blob_log", table.ms_per_image / (1e3 * t_ref))
    print(f"\n{args.size} x {args.size} px 2H-MoS2, {args.pixel_size_pm} pm/px, dose {args.dose:g} e/Å², "
          f"device {pick_device()}, {torch.get_num_threads()} torch threads, best of {args.repeat}\n")
    print(table.to_markdown(index=False, floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
