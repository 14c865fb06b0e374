"""Batched 2-D Gaussian refinement vs Atomap's, side by side on the same image.

    python benchmarks/gaussfit.py            # ~1000 columns of 2H-MoS2
    python benchmarks/gaussfit.py --size 480 --repeat 3

Both refine the same start positions (the integer local maxima that
``atomloc.locate.classical.find_peaks`` returns) on the same simulated frame:
Atomap's ``Sublattice.refine_atom_positions_using_2d_gaussian`` (one
elliptical Gaussian fit per column, mask of 0.4 x the nearest-neighbour
distance) and ``atomloc.locate.refine.fit_gaussians`` (all columns at once, round and
elliptical, disc of 0.4 x the spacing).  Printed: seconds, columns per second,
the speed-up over Atomap, and the RMSE against the simulated truth of the
columns both fitted.  Needs Atomap (``pip install 'atomloc[benchmark]'``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atomloc.locate.classical import find_peaks  # noqa: E402
from atomloc.locate.refine import fit_gaussians  # noqa: E402
from atomloc.locate.spacing import estimate_spacing  # noqa: E402
from atomloc.simulate.series import SeriesSpec, simulate_series  # noqa: E402


def rmse_to_truth(xy: np.ndarray, truth: np.ndarray, keep: np.ndarray) -> float:
    d, _ = cKDTree(truth).query(xy[keep])
    return float(np.sqrt(np.mean(d ** 2)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=340, help="image side, pixels (default 340: ~1000 columns)")
    p.add_argument("--pixel-size-pm", type=float, default=20.0)
    p.add_argument("--dose", type=float, default=50000.0, help="dose, e/Å^2")
    p.add_argument("--repeat", type=int, default=1, help="runs of each; the shortest is kept")
    args = p.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import atomap.api as am
    except ImportError:
        print("benchmarks/gaussfit.py needs Atomap: pip install 'atomloc[benchmark]'", file=sys.stderr)
        return 2

    spec = SeriesSpec(material="MoS2", shape_px=(args.size, args.size), pixel_size_pm=args.pixel_size_pm,
                      n_frames=1, rotation_deg=13.0, dose_e_per_A2=(args.dose, args.dose), seed=3)
    series = simulate_series(spec)
    image = series.frames[0].astype(np.float64)
    truth = np.column_stack([series.truth.x[0], series.truth.y[0]])
    spacing = estimate_spacing(image)
    start = find_peaks(image, spacing)  # (row, col)
    margin = 0.5 * spacing
    inner = np.all((start >= margin) & (start <= np.array(image.shape) - 1 - margin), axis=1)
    start = start[inner]
    radius = 0.4 * spacing

    def run_atomap():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sub = am.Sublattice(start[:, ::-1].astype(float), image=image - image.min())
            sub.find_nearest_neighbors()
            sub.refine_atom_positions_using_2d_gaussian(percent_to_nn=0.4, show_progressbar=False)
        return np.column_stack([sub.x_position, sub.y_position]), np.ones(len(start), bool)

    def run_ours(elliptical):
        fit = fit_gaussians(image, start[:, 1], start[:, 0], radius_px=radius, sigma_px=max(0.5, 0.2 * spacing),
                            max_shift_px=0.5 * radius, elliptical=elliptical)
        return np.column_stack([fit.x, fit.y]), fit.ok

    runs = {"atomap refine_atom_positions_using_2d_gaussian": run_atomap,
            "atomloc fit_gaussians (round)": lambda: run_ours(False),
            "atomloc fit_gaussians (elliptical)": lambda: run_ours(True)}
    results = {}
    for name, func in runs.items():
        best = np.inf
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            xy, ok = func()
            best = min(best, time.perf_counter() - t0)
        results[name] = (best, xy, ok)
        print(f"{name}: {best:.3f} s", file=sys.stderr, flush=True)

    both = np.logical_and.reduce([ok for _, _, ok in results.values()])
    t_atomap = results["atomap refine_atom_positions_using_2d_gaussian"][0]
    rows = [{"refinement": name, "seconds": t, "columns_per_s": len(start) / t, "speedup_vs_atomap": t_atomap / t,
             "fits_ok": int(ok.sum()), "rmse_px": rmse_to_truth(xy, truth, both),
             "rmse_pm": args.pixel_size_pm * rmse_to_truth(xy, truth, both)}
            for name, (t, xy, ok) in results.items()]
    print(f"\n{args.size} x {args.size} px 2H-MoS2, {args.pixel_size_pm} pm/px, dose {args.dose:g} e/Å², "
          f"{len(start)} columns from the same start positions, spacing {spacing:.2f} px; RMSE over the "
          f"{int(both.sum())} columns every fit accepted; best of {args.repeat} run(s)\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
