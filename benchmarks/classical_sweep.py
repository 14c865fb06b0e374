"""Every classical method with its defaults over a controlled dose sweep, in focus, and on pure noise.

    python benchmarks/classical_sweep.py                        # 4 materials x 7 doses, ~5-10 min on 2 cores
    python benchmarks/classical_sweep.py --materials MoS2 --doses 1e3 1e4 --methods gaussfit log

Each material is rendered by the workflow's simulator (:func:`atomloc.simulate.series.simulate_series`,
linear model, in focus, no astigmatism, drift or scan distortion) at 15 pm pixels (MoS2 Mo-S2 spacing
about 12 px) on one 256^2 field per seed; the same noise-free field is taken to each dose.  Every
method runs as ``atomloc locate IMAGE --method M`` would (its defaults, spacing estimated from the
image; "no lattice found" counts as no detection) and is scored (F1 at 0.3 x spacing) against all
true columns and against the heavy ones (kind "metal"; all columns where there is none).  Prints, per material and dose,
the best method's F1 and the methods more than 0.05 below it where the best reaches 0.9 (issue 17's
criterion); then the detections on pure-noise images as a percentage of the columns a lattice of
the default spacing would have.  ``--out`` writes every score as CSV.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atomloc.analysis.metrics import score_detections  # noqa: E402
from atomloc.core.errors import AtomlocInputError  # noqa: E402
from atomloc.locate import locate  # noqa: E402
from atomloc.simulate.series import simulate_series  # noqa: E402
from atomloc.simulate.spec import SeriesSpec  # noqa: E402

MATERIALS = ("MoS2", "ReS2", "graphene", "SrTiO3_001")
DOSES = (1e2, 3e2, 1e3, 3e3, 1e4, 3e4, 1e5)
METHODS = ("threshold_centroid", "threshold_wcentroid", "log", "dog", "doh", "findfoci", "gaussfit", "rl_gaussfit")
HEAVY_KINDS = ("metal",)
PIXEL_PM = 15.0
GAP = 0.05


def clean_field(material: str, seed: int, shape_px: int):
    """Noise-free field (counts at 1 e/Å^2), all true columns and the heavy ones ((m, 2) x, y, pixels)."""
    spec = SeriesSpec(material=material, shape_px=(shape_px, shape_px), pixel_size_pm=PIXEL_PM, n_frames=1,
                      rotation_deg=7.0 + 11 * seed, dose_e_per_A2=(1.0, 1.0), defocus_nm=(0.0, 0.0),
                      astigmatism_nm=0.0, drift_px_per_frame=0.0, scan_creep_px=0.0, scan_wobble_px=0.0,
                      scan_jitter_px=0.0, seed=seed)
    series = simulate_series(spec, return_clean=True)
    kinds = sorted(set(series.truth.kind))
    heavy = [k for k in kinds if k in HEAVY_KINDS] or kinds
    return series.clean[0], series.truth.positions(0), series.truth.positions(0, heavy), spec


def run(materials, doses, methods, seeds, shape_px) -> pd.DataFrame:
    rows = []
    for material in materials:
        for seed in range(seeds):
            clean, truth, heavy, spec = clean_field(material, seed, shape_px)
            rng = np.random.default_rng(1000 + seed)
            for dose in doses:
                # the simulator's own detector: Poisson counts of the expected electrons, plus read noise
                image = rng.poisson(np.clip(clean * dose, 0, None)).astype(np.float64)
                image += rng.normal(0.0, spec.read_noise_counts, image.shape)
                for method in methods:
                    t0 = time.perf_counter()
                    try:
                        xy = locate(image, method)[["x", "y"]].to_numpy()
                    except AtomlocInputError:
                        xy = np.zeros((0, 2))
                    seconds = time.perf_counter() - t0
                    s_all = score_detections(xy, truth, image.shape)
                    s_heavy = score_detections(xy, heavy, image.shape)
                    rows.append({"material": material, "seed": seed, "dose_e_per_A2": dose, "method": method,
                                 "n": len(xy), "f1": s_all.f1, "precision": s_all.precision, "recall": s_all.recall,
                                 "f1_heavy": s_heavy.f1, "seconds": seconds})
    return pd.DataFrame(rows)


def verdict(scores: pd.DataFrame, column: str = "f1") -> pd.DataFrame:
    """Per material and dose: the best method, its mean F1 and the methods more than GAP below it (best >= 0.9)."""
    mean = scores.groupby(["material", "dose_e_per_A2", "method"])[column].mean().unstack("method")
    out = pd.DataFrame({"best": mean.idxmax(axis=1).where(mean.max(axis=1) > 0, "none"),
                        "best_f1": mean.max(axis=1).round(3)})
    out["behind_by_more_than_0.05"] = [
        ", ".join(f"{m} {v:.3f}" for m, v in row.items() if row.max() >= 0.9 and v < row.max() - GAP)
        for _, row in mean.iterrows()]
    return out


def noise_rows(methods, spacing_px: float, shape_px: int, seed: int) -> pd.DataFrame:
    """Detections on pure Poisson noise, as % of the columns of a square lattice of ``spacing_px``."""
    rng = np.random.default_rng(seed)
    cells = (shape_px / spacing_px) ** 2
    rows = []
    for level in (2.0, 20.0, 200.0):
        image = rng.poisson(level, size=(shape_px, shape_px)).astype(np.float64)
        for method in methods:
            try:
                n = len(locate(image, method))
            except AtomlocInputError:
                n = 0
            rows.append({"counts_per_px": level, "method": method, "n": n, "percent_of_lattice": 100 * n / cells})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", nargs="+", default=list(MATERIALS))
    parser.add_argument("--doses", nargs="+", type=float, default=list(DOSES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=1, help="independent fields per material")
    parser.add_argument("--shape", type=int, default=256, help="field side, pixels")
    parser.add_argument("--out", type=Path, help="CSV of every score")
    args = parser.parse_args(argv)
    scores = run(args.materials, args.doses, args.methods, args.seeds, args.shape)
    table = scores.groupby(["material", "dose_e_per_A2", "method"])["f1"].mean().unstack("method")
    print(table[[m for m in args.methods if m in table.columns]].to_markdown(floatfmt=".3f"))
    print()
    print(verdict(scores).to_markdown())
    print()
    noise = noise_rows(args.methods, 12.0, args.shape, seed=7)
    print(noise.pivot_table(index="counts_per_px", columns="method", values="percent_of_lattice")
          [args.methods].to_markdown(floatfmt=".2f"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        scores.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
