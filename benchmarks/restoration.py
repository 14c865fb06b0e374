"""Restoration: quality against the noise-free truth, columns it must not create, and the Si [110] precision test.

    python benchmarks/restoration.py                       # all three parts, ~10 min on 2 cores
    python benchmarks/restoration.py --part quality --doses 1e3 1e4 --seeds 2
    python benchmarks/restoration.py --part precision --out results/restoration
    python benchmarks/restoration.py --part quality --tta  # learned restorations D4-averaged

Three parts (every image simulated here, seeded; nothing is tuned on them):

* ``quality``: held-out structures (no library draws them: NiO [001] and the foreign
  set's GaAs / CdTe [110] dumbbells and BaTiO3 [110]; the benchmark's simulator with
  abTEM's probe, not the library's Gaussian one) at 15 pm pixels, in focus, at each
  dose; every restoration is scored against the truth of what it claims to give:
  PSNR and SSIM against the expected image (denoisers) or against the columns alone
  (restorations that remove the background, and peers followed by ``bg``); the
  margin of ``denoise_bg`` over ``bm3d+bg`` and ``nl_means+bg`` is the paired mean
  difference with a bootstrap interval over the frames.
* ``noise``: pure Poisson noise and vacuum (dark level + read noise), 256 px; each
  locator on each restored image (``M@R``): its detections against the 1 % of a
  lattice's columns at 8 px spacing the acceptance allows.
* ``precision``: the AtomSegNet study's test, Si [110] at 9.4 pm pixels at the dose
  whose raw frames reach PSNR ~21 dB against their expected image (chosen on frames
  of another seed), 256 px, no drift or scan distortion: per frame the standard
  deviation of the measured lattice parameters |a| and |b|
  (:func:`atomloc.analysis.strain.lattice_parameter_precision`), raw vs restored, for
  the Gaussian fit and the learned map, and the number of measurements
  N = (sigma / 1 pm)^2 that 1-pm precision needs.

``--weights NAME=PATH`` scores a restorer checkpoint instead of the shipped one in the
quality part (the other two locate with ``M@R``, which uses the shipped weights).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atomloc.analysis.restoration import background_free_truth, quality_table, restoration_quality  # noqa: E402
from atomloc.analysis.strain import lattice_parameter_precision  # noqa: E402
from atomloc.analysis.sweeps import bootstrap_mean_ci, interval_text  # noqa: E402
from atomloc.core.errors import AtomlocInputError  # noqa: E402
from atomloc.locate import locate, restore  # noqa: E402
from atomloc.locate.restore import LEARNED_RESTORATIONS  # noqa: E402
from atomloc.simulate.series import simulate_series  # noqa: E402
from atomloc.simulate.spec import SeriesSpec  # noqa: E402

STRUCTURES = ("NiO_001", "GaAs_110", "CdTe_110", "BaTiO3_110")
DOSES = (1.0e3, 3.0e3, 1.0e4, 3.0e4, 1.0e5)
RESTORATIONS = ("denoise", "denoise_bg", "nl_means", "tv", "wavelet", "bm3d", "bg", "nl_means+bg", "tv+bg",
                "wavelet+bg", "bm3d+bg")
NOISE_LOCATORS = ("gaussfit", "log", "atomsegnet")
NOISE_RESTORATIONS = ("denoise", "denoise_bg", "superres", "bm3d", "nl_means")
PRECISION_METHODS = ("gaussfit", "atomsegnet")
PRECISION_RESTORATIONS = ("denoise", "denoise_bg", "bm3d")
STILL = {"drift_px_per_frame": 0.0, "scan_creep_px": 0.0, "scan_wobble_px": 0.0, "scan_jitter_px": 0.0,
         "astigmatism_nm": 0.0, "defocus_nm": (0.0, 0.0)}


def _restorer(weights: dict, tta: bool = False):
    def run(image, name, spacing_px):
        learned = [s for s in name.split("+") if s in LEARNED_RESTORATIONS]
        model = weights.get(learned[0], "auto") if learned else "auto"
        return restore(image, name, spacing_px, model=model, tta=tta)
    return run


def _series(material, pixel_size_pm, doses, seeds, shape_px, seed):
    """Frames at each dose (``seeds`` each, in focus), their expected images and their columns alone."""
    frame_doses = tuple(float(d) for d in doses for _ in range(seeds))
    spec = SeriesSpec.from_mapping({"material": material, "shape_px": [shape_px, shape_px],
                                    "pixel_size_pm": pixel_size_pm, "n_frames": len(frame_doses),
                                    "frame_dose_e_per_A2": list(frame_doses),
                                    "frame_defocus_nm": [0.0] * len(frame_doses), "rotation_deg": 7.0,
                                    "seed": seed, **STILL})
    series = simulate_series(spec, return_clean=True, name=material)
    if spec.ramp_fraction or spec.contamination_fraction or spec.contamination_blobs:
        raise AtomlocInputError(f"{material}: the background-free truth needs a series without ramp or contamination")
    no_bg = np.stack([background_free_truth(c, d, pixel_size_pm, spec.background_fraction)
                      for c, d in zip(series.clean, frame_doses)])
    return series, np.asarray(frame_doses), no_bg


def quality(structures, doses, seeds, restorations, weights, n_boot=1000,
            tta: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    run = _restorer(weights, tta)
    rows = []
    for i, material in enumerate(structures):
        series, frame_doses, no_bg = _series(material, 15.0, doses, seeds, 128, seed=300 + i)
        spacing = _spacing(series)
        t0 = time.perf_counter()
        table = restoration_quality(series.frames, series.clean, no_bg, spacing, restorations, run)
        table["material"] = material
        table["dose_e_per_A2"] = frame_doses[table["frame"].to_numpy()]
        rows.append(table)
        print(f"{material}: spacing {spacing:.1f} px, {len(series.frames)} frames in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    rows = pd.concat(rows, ignore_index=True)
    table = quality_table(rows, n_boot=n_boot)
    summary = table[["restoration", "truth", "dose_e_per_A2", "n_images"]].copy()
    summary["psnr_db"] = [interval_text(a, b, c, 2) for a, b, c in zip(table.psnr_db_mean, table.psnr_db_lo,
                                                                      table.psnr_db_hi)]
    summary["ssim"] = [interval_text(a, b, c, 3) for a, b, c in zip(table.ssim_mean, table.ssim_lo, table.ssim_hi)]
    summary["seconds_per_frame"] = table["time_s_per_frame"]
    margins = []
    ours = rows[rows["restoration"] == "denoise_bg"].set_index(["material", "frame"])
    for peer in ("bm3d+bg", "nl_means+bg"):
        theirs = rows[rows["restoration"] == peer].set_index(["material", "frame"])
        if ours.empty or theirs.empty:
            continue
        diff = (ours["psnr_db"] - theirs["psnr_db"]).rename("d").reset_index()
        diff["dose_e_per_A2"] = ours["dose_e_per_A2"].to_numpy()
        for dose, part in diff.groupby("dose_e_per_A2"):
            m = bootstrap_mean_ci(part["d"], n_boot=n_boot)
            margins.append({"vs": peer, "dose_e_per_A2": dose, "n_images": len(part),
                            "denoise_bg - peer (dB)": interval_text(*m, 2), "better": bool(m[1] > 0),
                            "not worse": bool(m[2] >= 0)})
    return summary, pd.DataFrame(margins)


def _spacing(series) -> float:
    from atomloc.core.geometry import nearest_neighbour_spacing

    xy = np.column_stack([series.truth.x[0], series.truth.y[0]])
    return float(nearest_neighbour_spacing(xy))


def noise(locators, restorations, shape_px=256, spacing_px=8.0) -> pd.DataFrame:
    """Detections on images without columns, raw and after each restoration."""
    rng = np.random.default_rng(7)
    images = {"poisson_20": rng.poisson(20.0, (shape_px, shape_px)).astype(np.float64),
              "poisson_1000": rng.poisson(1000.0, (shape_px, shape_px)).astype(np.float64),
              "vacuum": 100.0 + rng.normal(0, 2.0, (shape_px, shape_px))}
    allowed = 0.01 * shape_px ** 2 / spacing_px ** 2
    rows = []
    for name, image in images.items():
        for m in locators:
            for r in (None, *restorations):
                method = m if r is None else f"{m}@{r}"
                try:
                    n = len(locate(image, method, spacing_px=spacing_px))
                except AtomlocInputError as exc:
                    print(f"{name}: {method}: {exc}", file=sys.stderr)
                    continue
                rows.append({"image": name, "method": method, "detections": n, "allowed_1pct": round(allowed, 1),
                             "ok": n <= allowed})
    return pd.DataFrame(rows)


def precision(methods, restorations, n_frames=8, target_psnr_db=21.0) -> tuple[pd.DataFrame, float]:
    """Lattice-parameter precision on Si [110] at 9.4 pm pixels, raw vs restored (``M@R``)."""
    from atomloc.analysis.restoration import image_quality

    # the dose whose raw frames reach the target PSNR, chosen on frames of another seed
    doses = np.geomspace(1e3, 1e6, 13)
    calib, _, _ = _series("Si_110", 9.4, doses, 1, 256, seed=900)
    psnr = np.array([image_quality(f, c)["psnr_db"] for f, c in zip(calib.frames, calib.clean)])
    dose = float(np.interp(target_psnr_db, psnr, doses)) if psnr.min() <= target_psnr_db <= psnr.max() else \
        float(doses[np.argmin(np.abs(psnr - target_psnr_db))])
    series, _, _ = _series("Si_110", 9.4, [dose], n_frames, 256, seed=901)
    lattice = np.asarray(series.attrs["lattice_px"], dtype=np.float64)
    frame_psnr = np.mean([image_quality(f, c)["psnr_db"] for f, c in zip(series.frames, series.clean)])
    rows = []
    for m in methods:
        for r in (None, *restorations):
            method = m if r is None else f"{m}@{r}"
            stds = []
            for frame in series.frames:
                xy = locate(frame, method)[["x", "y"]].to_numpy()
                sa, sb, na, nb = lattice_parameter_precision(xy, lattice, 9.4)
                stds.append((sa, sb, na, nb))
            s = np.array(stds, dtype=np.float64)
            sa, sb = np.nanmean(s[:, 0]), np.nanmean(s[:, 1])
            rows.append({"method": method, "frames": len(s), "sigma_a_pm": round(sa, 2), "sigma_b_pm": round(sb, 2),
                         "measurements_a": int(np.nanmean(s[:, 2])), "measurements_b": int(np.nanmean(s[:, 3])),
                         "N_for_1pm_a": int(np.ceil(sa ** 2)) if np.isfinite(sa) else None,
                         "N_for_1pm_b": int(np.ceil(sb ** 2)) if np.isfinite(sb) else None})
    out = pd.DataFrame(rows)
    out.attrs.update({"dose_e_per_A2": dose, "psnr_db": frame_psnr})
    return out, dose


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("quality", "noise", "precision", "all"), default="all")
    parser.add_argument("--structures", nargs="+", default=list(STRUCTURES))
    parser.add_argument("--doses", nargs="+", type=float, default=list(DOSES))
    parser.add_argument("--seeds", type=int, default=3, help="frames per structure and dose")
    parser.add_argument("--restorations", nargs="+", default=list(RESTORATIONS))
    parser.add_argument("--frames", type=int, default=8, help="frames of the precision test")
    parser.add_argument("--precision-methods", nargs="+", default=list(PRECISION_METHODS))
    parser.add_argument("--precision-restorations", nargs="+", default=list(PRECISION_RESTORATIONS))
    parser.add_argument("--noise-restorations", nargs="+", default=list(NOISE_RESTORATIONS))
    parser.add_argument("--weights", nargs="*", default=[], metavar="NAME=PATH",
                        help="restorer checkpoints instead of the shipped ones (e.g. denoise_bg=results/release/denoise_bg.pt)")
    parser.add_argument("--tta", action="store_true",
                        help="quality part: D4 test-time averaging of the learned restorations")
    parser.add_argument("--out", type=Path, default=None, help="folder for the CSV tables")
    args = parser.parse_args(argv)
    weights = dict(w.split("=", 1) for w in args.weights)
    tables = {}
    if args.part in ("quality", "all"):
        summary, margins = quality(args.structures, args.doses, args.seeds, args.restorations, weights, tta=args.tta)
        tables["quality"], tables["margins"] = summary, margins
        print(f"\nRestoration quality on {', '.join(args.structures)} (15 pm pixels, in focus), mean [95 % interval]:")
        print(summary.to_markdown(index=False, floatfmt=".3g"))
        if len(margins):
            print("\nPSNR margin of denoise_bg over the peers (against the columns alone):")
            print(margins.to_markdown(index=False, floatfmt=".3g"))
    if args.part in ("noise", "all"):
        tables["noise"] = noise(NOISE_LOCATORS, args.noise_restorations)
        print("\nDetections on images without columns (allowed: 1 % of a lattice's columns at 8 px spacing):")
        print(tables["noise"].to_markdown(index=False))
    if args.part in ("precision", "all"):
        table, dose = precision(args.precision_methods, args.precision_restorations, args.frames)
        tables["precision"] = table
        print(f"\nSi [110], 9.4 pm pixels, {dose:.3g} e/Å² (raw PSNR {table.attrs['psnr_db']:.1f} dB), "
              f"{args.frames} frames of 256 px: lattice-parameter precision (pm) and N = (sigma / 1 pm)^2:")
        print(table.to_markdown(index=False))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.to_csv(args.out / f"restoration_{name}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
