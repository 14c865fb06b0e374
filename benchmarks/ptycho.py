"""Ptychography vs virtual images: where are the columns, light ones included, at three doses.

    python benchmarks/ptycho.py                          # MoS2, 1e3 / 1e4 / 1e5 e/Å², ~2 min on 2 cores
    python benchmarks/ptycho.py --doses 1e4 --iterations 30 --locators peaks gaussfit --out results/ptycho.csv
    python benchmarks/ptycho.py --cache /tmp/ptycho_cache # keeps the noise-free scan between runs
    python benchmarks/ptycho.py --peer py4dstem           # adds py4DSTEM's single-slice reconstruction, if importable

One abTEM multislice 4D-STEM scan of a perfect crystal (:func:`atomloc.simulate.fourd.simulate_4dstem`:
MoS2 4 x 2 rectangular cells, 12.6 x 10.9 Å, 300 kV, 25 mrad, in focus, ~0.3 Å steps, 1591
positions, detector +-60 mrad on 64 x 75 pixels) is taken to each dose by Poisson noise.  Each
dose is reconstructed (:func:`atomloc.ptycho.reconstruct_ptycho`, single slice, Adam) and the
phase resampled onto the scan grid; the virtual ADF (40 mrad to the detector edge) and iCoM come
from the same counts (:func:`atomloc.ptycho.virtual.virtual_images`).  Every image is located
the same way: ``peaks`` = :func:`skimage.feature.peak_local_max` on the image smoothed by a
Gaussian of 0.25 Å, a third of the column spacing apart, above 25 % of its 5-99.5 % range; any
registered method of :mod:`atomloc.locate` can be added (``--locators peaks gaussfit``).

Scores against the true columns (scan pixels): F1 at 0.3 x the nearest-neighbour spacing
(:func:`atomloc.analysis.metrics.score_detections`), the recall of the heavy (Mo) and of the
light (S2) columns (each scored with the other kind as "don't care"), and the RMSE of the
matched positions in pm (:func:`atomloc.analysis.ptycho.score_modality`); ``phase_error`` (phase images only)
is the relative RMS error of the phase against the true one, sigma x abTEM's projected potential of the same
atoms band-limited to 2 alpha / lambda and resampled like the reconstruction
(:func:`atomloc.simulate.fourd.projected_phase`, :func:`atomloc.analysis.ptycho.reference_phase`,
:func:`atomloc.analysis.ptycho.phase_error`: constant removed, 4 scan pixels of edge left out); ``image_s`` is the time
to make the image (the reconstruction, the virtual detectors), ``locate_s`` the locator's.  Prints
one Markdown table; ``--out`` writes it as CSV.

The py4DSTEM peer (``--peer py4dstem``): py4DSTEM 0.14.18 pins numpy<2, so it goes in without
its dependency resolution, into a separate environment that sees this one's packages::

    python -m venv --system-site-packages /tmp/p4env
    /tmp/p4env/bin/pip install --no-deps py4DSTEM==0.14.18 emdfile ncempy pylops colorspacious mpire dill \
        gdown hdf5plugin scikit-optimize beautifulsoup4 soupsieve
    /tmp/p4env/bin/python -c "import numpy; print(numpy.__version__)"   # must still print 2.x
    /tmp/p4env/bin/python benchmarks/ptycho.py --peer py4dstem

Without it the peer is skipped with a message.
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

from atomloc.analysis.ptycho import phase_error, reference_phase, score_modality  # noqa: E402
from atomloc.core.errors import AtomlocInputError  # noqa: E402
from atomloc.io.fourd import read_4dstem, write_4dstem  # noqa: E402
from atomloc.ptycho import reconstruct_ptycho  # noqa: E402
from atomloc.ptycho.virtual import virtual_images  # noqa: E402
from atomloc.simulate.fourd import apply_dose, projected_phase, simulate_4dstem  # noqa: E402

DOSES = (1.0e3, 1.0e4, 1.0e5)


def peaks_locate(image: np.ndarray, sampling_A, spacing_A: float, smooth_A: float = 0.25,
                 threshold_frac: float = 0.25) -> np.ndarray:
    """Local maxima of the smoothed image, (x, y) pixels refined by a parabola through each maximum."""
    from skimage.feature import peak_local_max

    sy, sx = sampling_A
    smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float64), (smooth_A / sy, smooth_A / sx),
                                     mode="nearest")
    lo, hi = np.percentile(smooth, [5, 99.5])
    min_px = max(1, int(round(spacing_A / 3 / max(sy, sx))))
    rc = peak_local_max(smooth, min_distance=min_px, threshold_abs=lo + threshold_frac * (hi - lo),
                        exclude_border=False)
    out = []
    for r, c in rc:
        dy = dx = 0.0
        if 0 < r < smooth.shape[0] - 1:
            den = smooth[r - 1, c] - 2 * smooth[r, c] + smooth[r + 1, c]
            dy = 0.5 * (smooth[r - 1, c] - smooth[r + 1, c]) / den if den < 0 else 0.0
        if 0 < c < smooth.shape[1] - 1:
            den = smooth[r, c - 1] - 2 * smooth[r, c] + smooth[r, c + 1]
            dx = 0.5 * (smooth[r, c - 1] - smooth[r, c + 1]) / den if den < 0 else 0.0
        out.append((c + np.clip(dx, -0.5, 0.5), r + np.clip(dy, -0.5, 0.5)))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def locate_on(image: np.ndarray, locator: str, sampling_A, spacing_A: float) -> np.ndarray:
    """Positions (x, y) found by ``peaks`` or a registered :mod:`atomloc.locate` method (its defaults)."""
    if locator == "peaks":
        return peaks_locate(image, sampling_A, spacing_A)
    from atomloc.locate import locate

    try:
        found = locate(np.asarray(image, dtype=np.float64), locator)
    except AtomlocInputError as exc:  # e.g. no lattice found: nothing detected
        print(f"  {locator}: {exc}", file=sys.stderr)
        return np.empty((0, 2))
    return found[["x", "y"]].to_numpy(dtype=np.float64)


def _spacing(xy: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    return float(np.mean(cKDTree(xy).query(xy, k=2)[0][:, 1]))


def square_detector(data: np.ndarray, reciprocal_sampling_per_A) -> tuple[np.ndarray, float]:
    """Patterns resampled (linear interpolation) onto square pixels of the finer of the two samplings.

    The zero angle stays at pixel ``n // 2``; counts are scaled by the pixel-area ratio.
    """
    dky, dkx = reciprocal_sampling_per_A
    dk = min(dky, dkx)
    ny, nx = data.shape[-2:]
    my = 2 * int(np.floor((ny // 2) * dky / dk)) + 1
    mx = 2 * int(np.floor((nx // 2) * dkx / dk)) + 1
    rows = (np.arange(my) - my // 2) * dk / dky + ny // 2
    cols = (np.arange(mx) - mx // 2) * dk / dkx + nx // 2
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    flat = data.reshape(-1, ny, nx)
    out = np.stack([ndimage.map_coordinates(p, [rr, cc], order=1, mode="constant") for p in flat])
    return out.reshape(*data.shape[:2], my, mx) * (dk * dk / (dky * dkx)), dk


def py4dstem_phase(data: np.ndarray, calib: dict, iterations: int):
    """py4DSTEM 0.14.18 single-slice ptychography (gradient descent); the phase on the scan grid.

    py4DSTEM takes one scan step and one detector pixel size: the patterns are resampled onto square
    pixels (:func:`square_detector`) and the mean scan step is used (the two differ by < 1 %).  The phase is
    mapped to the scan grid through py4DSTEM's own probe positions (object pixels).  None where py4DSTEM
    cannot be imported.
    """
    try:
        import py4DSTEM
    except Exception as exc:  # not installed, or its numpy<2 pin broke the import
        print(f"py4DSTEM peer skipped: cannot import py4DSTEM ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    square, dk = square_detector(data, calib["reciprocal_sampling_per_A"])
    step = float(np.mean(calib["scan_sampling_A"]))
    cube = py4DSTEM.DataCube(data=square.astype(np.float32))
    cube.calibration.set_R_pixel_size(step)
    cube.calibration.set_R_pixel_units("A")
    cube.calibration.set_Q_pixel_size(dk)
    cube.calibration.set_Q_pixel_units("A^-1")
    ptycho = py4DSTEM.process.phase.SingleslicePtychography(
        datacube=cube, energy=calib["energy_keV"] * 1e3, semiangle_cutoff=calib["semiangle_mrad"],
        polar_parameters={"C10": -calib["defocus_A"]}, device="cpu", verbose=False, object_padding_px=(16, 16))
    ptycho.preprocess(plot_center_of_mass=False, plot_rotation=False, plot_probe_overlaps=False,
                      force_com_rotation=0.0, force_com_transpose=False, center_positions_in_fov=False)
    ptycho.reconstruct(num_iter=iterations, reconstruction_method="gradient-descent", step_size=0.5,
                       max_batch_size=64, seed_random=0, progress_bar=False)
    phase = np.angle(np.asarray(ptycho.object))
    # py4DSTEM's probe centres (object pixels, row / column), scan order row-major.
    pos = np.asarray(ptycho._positions_px_initial).reshape(data.shape[0], data.shape[1], 2)
    ratio = step / np.array(ptycho.sampling)
    smooth = ndimage.gaussian_filter(phase, np.maximum(ratio - 1, 0) / 2, mode="nearest")
    return ndimage.map_coordinates(smooth, [pos[..., 0], pos[..., 1]], order=3, mode="nearest").astype(np.float32)


def noise_free_scan(material: str, scan_step_A: float, seed: int, cache: Path | None = None):
    """The noise-free scan (collected fractions); with ``cache`` (a folder) kept there as HDF5 between runs."""
    stored = None if cache is None else cache / f"{material}_{scan_step_A:g}_{seed}.h5"
    if stored is not None and stored.is_file():
        return read_4dstem(stored)
    scan = simulate_4dstem(material, scan_step_A=scan_step_A, dose_e_per_A2=None, seed=seed)
    if stored is not None:
        write_4dstem(stored, scan, include_clean=False)
    return scan


def run(material: str, doses, iterations: int, batch_size: int, learning_rate: float, locators, peer: str | None,
        scan_step_A: float, seed: int, cache: Path | None = None) -> pd.DataFrame:
    t0 = time.perf_counter()
    scan = noise_free_scan(material, scan_step_A, seed, cache)
    t_sim = time.perf_counter() - t0
    calib = scan.calibration()
    truth = scan.truth_xy()
    light = np.asarray(scan.truth["light"], dtype=bool)
    spacing_A = _spacing(truth * np.array(scan.scan_sampling_A[::-1]))
    print(f"{material}: abTEM 4D-STEM {scan.scan_shape} positions x {scan.detector_shape} pixels in {t_sim:.1f} s; "
          f"{len(truth)} columns ({light.sum()} light), spacing {spacing_A:.2f} Å", file=sys.stderr)
    truth_phase, phase_sampling = projected_phase(material, energy_keV=scan.energy_keV,
                                                  slice_thickness_A=scan.attrs["slice_thickness_A"])
    reference = reference_phase(truth_phase, phase_sampling, energy_keV=scan.energy_keV,
                                semiangle_mrad=scan.semiangle_mrad, scan_sampling_A=scan.scan_sampling_A,
                                scan_origin_A=scan.scan_origin_A, scan_shape=scan.scan_shape)
    rows = []
    for k, dose in enumerate(doses):
        data, _ = apply_dose(scan.data, dose, scan.scan_sampling_A, seed + 1 + k)
        images, seconds = {}, {}
        t1 = time.perf_counter()
        result = reconstruct_ptycho(data, **calib, n_iterations=iterations, batch_size=batch_size,
                                    learning_rate=learning_rate, seed=seed)
        seconds["phase"] = time.perf_counter() - t1
        images["phase"] = result.phase_on_scan_grid()
        t1 = time.perf_counter()
        virtual = virtual_images(data, semiangle_mrad=scan.semiangle_mrad, scan_sampling_A=scan.scan_sampling_A,
                                 angular_sampling_mrad=scan.angular_sampling_mrad,
                                 reciprocal_sampling_per_A=scan.reciprocal_sampling_per_A)
        seconds["vADF"] = seconds["iCoM"] = time.perf_counter() - t1
        images["vADF"], images["iCoM"] = virtual["adf"], virtual["icom"]
        if peer == "py4dstem":
            t1 = time.perf_counter()
            phase = py4dstem_phase(data, calib, iterations)
            if phase is not None:
                images["py4DSTEM phase"] = phase
                seconds["py4DSTEM phase"] = time.perf_counter() - t1
        print(f"  dose {dose:g}: reconstruction {seconds['phase']:.1f} s, loss {result.loss[0]:.4f} -> "
              f"{result.loss[-1]:.4f}", file=sys.stderr)
        for name, image in images.items():
            error = phase_error(image, reference) if "phase" in name else np.nan
            for locator in locators:
                t1 = time.perf_counter()
                pred = locate_on(image, locator, scan.scan_sampling_A, spacing_A)
                located = time.perf_counter() - t1
                s = score_modality(pred, truth, light, image.shape, scan.scan_sampling_A)
                rows.append({"dose_e_per_A2": dose, "image": name, "locator": locator, **s,
                             "phase_error": error, "image_s": seconds[name], "locate_s": located})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", default="MoS2")
    parser.add_argument("--doses", nargs="+", type=float, default=list(DOSES), help="e/Å²")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--scan-step", type=float, default=0.3, help="Å")
    parser.add_argument("--locators", nargs="+", default=["peaks"],
                        help="'peaks' and/or registered atomloc methods (gaussfit, log ...)")
    parser.add_argument("--peer", choices=("py4dstem",), help="also reconstruct with py4DSTEM 0.14.18")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="CSV of every score")
    parser.add_argument("--cache", type=Path, help="folder keeping the noise-free abTEM scan between runs")
    args = parser.parse_args(argv)
    table = run(args.material, args.doses, args.iterations, args.batch_size, args.learning_rate, args.locators,
                args.peer, args.scan_step, args.seed, args.cache)
    shown = table.copy()
    for col in ("f1", "precision", "recall_heavy", "recall_light"):
        shown[col] = shown[col].round(3)
    shown["rmse_pm"] = shown["rmse_pm"].round(1)
    shown[["image_s", "locate_s"]] = shown[["image_s", "locate_s"]].round(2)
    print(shown.to_markdown(index=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
