"""A foreign validation set: abTEM images of structures outside every training library, untrained noise.

    python benchmarks/foreign.py                       # 5 structures x 3 doses, PRISM; ~5 min on 2 cores
    python benchmarks/foreign.py --methods atomid gaussfit --structures GaAs_110 --simulator multislice
    python benchmarks/foreign.py --methods atomid atomid:tta --simulator linear   # with D4 test-time averaging

Each structure (zincblende GaAs and CdTe [110] dumbbells 1.41 / 1.62 Å apart, BaTiO3 [110],
rocksalt NiO [001], the 2H MoS2 bilayer) is imaged once by abTEM (``simulator: prism``
of :class:`atomloc.simulate.spec.SeriesSpec`: a perfect crystal in focus, 300 kV,
25 mrad, HAADF 45-180 mrad) at 25 pm pixels; the noise-free frame is then taken to
each dose (Poisson counts) with two scan artefacts no training library has:

* a fast-scan sinusoidal displacement (mains pick-up): the probe lands
  ``A sin(2 pi t / T + phi)`` pixels off along x, t the pixel's time in the raster
  (A = 0.4 px, T = 37.3 pixel times), and the truth moves with it;
* pink (1/f) per-line offsets of 3 % of the mean signal, and Gaussian read noise.

Plus two images with no columns at all: pure Poisson noise, and vacuum (the
detector's dark level with read noise).  Every method runs as ``atomloc locate
IMAGE --method M`` would (its defaults, shipped weights for the learned ones);
scored (F1 at 0.3 x spacing) against the visible columns (weight >= 10 % of the
heaviest: oxygen-only columns of the oxides are not), all columns of a frame.
A method written ``M:tta`` runs with ``tta=true`` (D4 test-time averaging of a
learned locator).  Prints one table (F1 per structure x dose per method) and the detections on the
empty images; ``--out`` writes it as CSV with precision, recall and RMSE.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atomloc.analysis.metrics import score_detections  # noqa: E402
from atomloc.core.errors import AtomlocInputError  # noqa: E402
from atomloc.locate import locate  # noqa: E402
from atomloc.simulate.series import simulate_series  # noqa: E402
from atomloc.simulate.spec import SeriesSpec  # noqa: E402

STRUCTURES = ("GaAs_110", "CdTe_110", "BaTiO3_110", "NiO_001", "MoS2_bilayer")
DOSES = (1.0e3, 1.0e4, 1.0e5)
METHODS = ("atomid", "atomsegnet", "gaussfit", "rl_gaussfit")
PIXEL_PM = 25.0
WOBBLE_PX, WOBBLE_PERIOD = 0.4, 37.3
LINE_OFFSET_FRAC, READ_NOISE = 0.03, 1.0


def clean_frame(structure: str, simulator: str, shape_px: int, seed: int, cache: Path | None = None):
    """abTEM's noise-free frame of ``structure`` (counts at 1 e/Å²) and its truth (x, y, weight).

    With ``cache`` (a folder) the frame is kept there as ``.npz`` and read back on later runs.
    """
    stored = None if cache is None else cache / f"{structure}_{simulator}_{shape_px}_{seed}.npz"
    if stored is not None and stored.is_file():
        with np.load(stored) as f:
            return f["clean"], f["truth"], f["weight"]
    spec = SeriesSpec.from_mapping({"material": structure, "simulator": simulator, "shape_px": [shape_px, shape_px],
                                    "pixel_size_pm": PIXEL_PM, "n_frames": 1, "rotation_deg": 7.0 + 11 * seed,
                                    "dose_e_per_A2": [1.0, 1.0], "defocus_nm": [0.0, 0.0], "drift_px_per_frame": 0.0,
                                    "scan_creep_px": 0.0, "scan_wobble_px": 0.0, "scan_jitter_px": 0.0,
                                    "seed": seed})
    series = simulate_series(spec, return_clean=True)
    weight = np.asarray(series.truth.extra["weight"], dtype=np.float64)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        np.savez(stored, clean=series.clean[0], truth=series.truth.positions(0), weight=weight)
    return series.clean[0], series.truth.positions(0), weight


def foreign_noise(clean: np.ndarray, truth_xy: np.ndarray, dose: float, rng: np.random.Generator):
    """The frame at ``dose`` with the untrained scan artefacts; the truth moved by the fast-scan wobble."""
    h, w = clean.shape
    t = np.arange(h * w, dtype=np.float64).reshape(h, w)
    phase = rng.uniform(0, 2 * np.pi)
    dx = WOBBLE_PX * np.sin(2 * np.pi * t / WOBBLE_PERIOD + phase)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    expected = dose * ndimage.map_coordinates(clean, [rows, cols + dx], order=3, mode="reflect")
    counts = rng.poisson(np.clip(expected, 0, None)).astype(np.float64)
    spectrum = np.fft.rfft(rng.standard_normal(h))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, n=h)
    pink *= LINE_OFFSET_FRAC * expected.mean() / max(pink.std(), 1e-12)
    image = counts + pink[:, None] + rng.normal(0, READ_NOISE, size=(h, w))
    # a column at x0 is imaged where x + dx(x, y) = x0: shift the truth by -dx there
    iy = np.clip(np.rint(truth_xy[:, 1]).astype(int), 0, h - 1)
    ix = np.clip(np.rint(truth_xy[:, 0]).astype(int), 0, w - 1)
    moved = truth_xy.copy()
    moved[:, 0] -= dx[iy, ix]
    return image, moved


def method_call(label: str) -> tuple[str, dict]:
    """``"atomid:tta"`` -> ``("atomid", {"tta": True})``; a plain method -> ``(method, {})``."""
    method, sep, option = label.partition(":")
    if not sep:
        return method, {}
    if option != "tta":
        raise AtomlocInputError(f"method {label!r}: the only option is ':tta'")
    return method, {"tta": True}


def run(structures, methods, simulator: str, shape_px: int, seed: int, cache: Path | None = None
        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    for k, structure in enumerate(structures):
        t0 = time.perf_counter()
        clean, truth, weight = clean_frame(structure, simulator, shape_px, seed + k, cache)
        visible = truth[weight >= 0.1 * weight.max()]
        print(f"{structure}: {simulator} frame in {time.perf_counter() - t0:.0f} s, {len(visible)} visible columns",
              file=sys.stderr)
        for dose in DOSES:
            image, moved = foreign_noise(clean, visible, dose, rng)
            for method in methods:
                t1 = time.perf_counter()
                try:
                    base, options = method_call(method)
                    found = locate(image, base, **options)
                except AtomlocInputError as exc:  # e.g. no lattice found at this dose: nothing detected
                    print(f"{structure} {dose:g}: {method}: {exc}", file=sys.stderr)
                    found = pd.DataFrame({"x": [], "y": []})
                s = score_detections(found[["x", "y"]].to_numpy(), moved, image.shape)
                rows.append({"structure": structure, "dose_e_per_A2": dose, "method": method, "n": len(found),
                             "f1": round(s.f1, 3), "precision": round(s.precision, 3), "recall": round(s.recall, 3),
                             "rmse_pm": round(s.rmse_px * PIXEL_PM, 1) if np.isfinite(s.rmse_px) else np.nan,
                             "seconds": round(time.perf_counter() - t1, 2)})
    empty = []
    noise = {"poisson_noise": rng.poisson(20.0, size=(shape_px, shape_px)).astype(np.float64),
             "vacuum": 5.0 + rng.normal(0, READ_NOISE, size=(shape_px, shape_px))}
    for name, image in noise.items():
        for method in methods:
            try:
                base, options = method_call(method)
                n = len(locate(image, base, **options))
            except AtomlocInputError:  # "no lattice found": the right answer on an empty image
                n = 0
            empty.append({"image": name, "method": method, "n": n})
    return pd.DataFrame(rows), pd.DataFrame(empty)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", nargs="+", default=list(STRUCTURES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--simulator", choices=("prism", "multislice", "linear"), default="prism")
    parser.add_argument("--shape", type=int, default=256, help="frame side, pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="CSV of every score")
    parser.add_argument("--cache", type=Path, help="folder keeping the noise-free abTEM frames between runs")
    args = parser.parse_args(argv)
    scores, empty = run(args.structures, args.methods, args.simulator, args.shape, args.seed, args.cache)
    table = scores.pivot_table(index=["structure", "dose_e_per_A2"], columns="method", values="f1")
    print(table[[m for m in args.methods if m in table.columns]].to_markdown(floatfmt=".3f"))
    print()
    print(empty.pivot_table(index="image", columns="method", values="n").to_markdown())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        scores.to_csv(args.out, index=False)
        empty.to_csv(args.out.with_name(args.out.stem + "_empty.csv"), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
