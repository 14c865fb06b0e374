"""Seconds per image and per column of every registered method on one simulated image.

    python benchmarks/methods_speed.py                 # one 1024 x 1024 2H-MoS2 frame
    python benchmarks/methods_speed.py --size 512 --methods log gaussfit --repeat 3

All methods run in one process on the same image, with the column spacing
estimated once and passed to each (its estimation is timed on its own row).
The reference is a plain ``skimage.feature.blob_log`` call on the same image
with the ``log`` method's sigmas; "x blob_log" is each method's time over that
reference's, so the ratio carries over between machines.  F1 and RMSE against
the simulated truth show that each method did its job at that speed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skimage.feature import blob_log  # noqa: E402

from atomloc.analysis.metrics import score_detections  # noqa: E402
from atomloc.core.image import normalise
from atomloc.locate.classical import blob_sigma_range
from atomloc.locate.registry import available_methods, get_method, locate  # noqa: E402
from atomloc.locate.spacing import estimate_spacing  # noqa: E402
from atomloc.simulate.series import SeriesSpec, simulate_series  # noqa: E402


def best_time(func, repeat: int) -> tuple[float, object]:
    """Shortest wall time of ``repeat`` calls (seconds) and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="image side, pixels (default 1024)")
    p.add_argument("--pixel-size-pm", type=float, default=20.0)
    p.add_argument("--dose", type=float, default=50000.0, help="dose, e/Å^2 (default 5e4)")
    p.add_argument("--methods", nargs="*", default=None, help="methods to time (default: all installed)")
    p.add_argument("--repeat", type=int, default=1, help="calls per method; the shortest is kept")
    args = p.parse_args(argv)

    spec = SeriesSpec(material="MoS2", shape_px=(args.size, args.size), pixel_size_pm=args.pixel_size_pm,
                      n_frames=1, rotation_deg=13.0, dose_e_per_A2=(args.dose, args.dose), seed=1)
    series = simulate_series(spec)
    image = series.frames[0].astype(np.float64)
    truth = np.column_stack([series.truth.x[0], series.truth.y[0]])

    t_spacing, spacing = best_time(lambda: estimate_spacing(image), args.repeat)
    min_sigma, max_sigma = blob_sigma_range(spacing, "auto", "auto")
    norm = normalise(image)
    t_ref, _ = best_time(lambda: blob_log(norm, min_sigma=min_sigma, max_sigma=max_sigma, num_sigma=10,
                                          threshold=0.1, exclude_border=False), args.repeat)

    names = args.methods or available_methods()
    rows = [{"method": "estimate_spacing", "s_per_image": t_spacing, "ms_per_column": np.nan,
             "x_blob_log": t_spacing / t_ref, "n_found": np.nan, "f1": np.nan, "rmse_pm": np.nan},
            {"method": "skimage blob_log (reference)", "s_per_image": t_ref, "ms_per_column": np.nan,
             "x_blob_log": 1.0, "n_found": np.nan, "f1": np.nan, "rmse_pm": np.nan}]
    for name in names:
        method = get_method(name)
        if method.missing():
            print(f"skipping {name}: needs {', '.join(method.missing())}", file=sys.stderr)
            continue
        method.load()
        seconds, pos = best_time(lambda: locate(image, name, spacing_px=spacing), args.repeat)
        score = score_detections(pos[["x", "y"]].to_numpy(), truth, image.shape, pixel_size_pm=args.pixel_size_pm)
        rows.append({"method": name, "s_per_image": seconds,
                     "ms_per_column": 1e3 * seconds / max(len(pos), 1), "x_blob_log": seconds / t_ref,
                     "n_found": len(pos), "f1": score.f1, "rmse_pm": score.rmse_pm})
        print(f"{name}: {seconds:.2f} s", file=sys.stderr, flush=True)

    table = pd.DataFrame(rows)
    table["n_found"] = [("" if np.isnan(v) else str(int(v))) for v in table["n_found"]]
    print(f"\n{args.size} x {args.size} px 2H-MoS2, {args.pixel_size_pm} pm/px, dose {args.dose:g} e/Å², "
          f"{len(truth)} true columns (some outside the frame), spacing {spacing:.2f} px; "
          f"best of {args.repeat} call(s)\n")
    print(table.to_markdown(index=False, floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
