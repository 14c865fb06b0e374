"""Ptychography against virtual images and HAADF: where are the columns, light ones included, per dose.

One abTEM multislice 4D-STEM scan of a perfect crystal
(:func:`atomloc.simulate.fourd.simulate_4dstem`, noise-free) is taken to each dose by
Poisson noise (``seeds`` draws per dose).  From the same counts come four images on the
scan grid:

- ``phase``: the object phase of the ptychographic reconstruction
  (:func:`atomloc.ptycho.reconstruct_ptycho`, single slice, Adam), resampled onto the scan grid;
- ``vADF`` and ``iCoM``: the virtual annular dark field (40 mrad to the detector edge) and the
  integrated centre of mass (:func:`atomloc.ptycho.virtual.virtual_images`);

and, as the anchor to the rest of the benchmark, ``HAADF``: the linear-model HAADF frame
(:mod:`atomloc.simulate.series`) of the same material at the same pixel size and dose
(:func:`haadf_anchor`; its own field and truth).

Every image is located by each registered :mod:`atomloc.locate` method (its defaults) and
scored against the true columns (:func:`score_modality`): F1 at 0.3 x the nearest-neighbour
spacing, the recall of the heavy and of the light columns (each scored with the other kind as
"don't care"), and the RMSE of the matched positions in pm.  A column is *light* when all its
atoms are in :data:`atomloc.simulate.fourd.LIGHT_ELEMENTS` (MoS2: the S2 columns).

Layer rank 4 (analysis): imports core, io, simulate, locate and ptycho.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from atomloc.analysis.metrics import score_detections
from atomloc.core.errors import AtomlocInputError

__all__ = ["DOSES", "METRICS", "MODALITIES", "ROW_COLUMNS", "acceptance_lines", "haadf_anchor", "light_columns",
           "light_dose_to_detect", "noise_seed", "ptycho_benchmark", "ptycho_tables", "resolve_device",
           "score_modality"]

DOSES = (1.0e3, 1.0e4, 1.0e5)
"""Default doses, e/Å²."""

MODALITIES = ("phase", "vADF", "iCoM", "HAADF")
"""The images scored, in table order."""

METRICS = ("f1", "precision", "recall_heavy", "recall_light", "rmse_pm", "time_image_s", "time_locate_s")
"""The per-image scores of :func:`ptycho_benchmark` (the summary's metrics)."""

ROW_COLUMNS = ("material", "dose_e_per_A2", "noise_seed", "modality", "method", "n", *METRICS)
"""Columns of ``ptycho_benchmark(...)["rows"]``."""


def _spacing_px(xy: np.ndarray) -> float:
    """Mean nearest-neighbour distance of the points, px."""
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy) < 2:
        raise AtomlocInputError(f"need at least two true columns to set the match radius (got {len(xy)})")
    return float(np.mean(cKDTree(xy).query(xy, k=2)[0][:, 1]))


def score_modality(pred_xy, truth_xy, light, shape, sampling_A) -> dict:
    """F1, precision, heavy / light recall and the RMSE (pm) of detections against the true columns.

    Parameters
    ----------
    pred_xy, truth_xy : array, shape (n, 2), (m, 2)
        (x, y) pixels (x = column index).
    light : array of bool, shape (m,)
        The light columns of ``truth_xy``.
    shape : (int, int)
        Image shape (H, W).
    sampling_A : float or (float, float)
        Pixel size (y, x), Å.

    Returns
    -------
    dict
        ``n`` (detections), ``f1``, ``precision`` (all columns, match radius 0.3 x the mean
        nearest-neighbour spacing of the truth), ``recall_heavy`` and ``recall_light`` (the other
        kind "don't care"; NaN without columns of that kind), ``rmse_pm`` (the matched pairs of
        the F1 score; NaN without any).
    """
    pred = np.asarray(pred_xy, dtype=np.float64).reshape(-1, 2)
    truth = np.asarray(truth_xy, dtype=np.float64).reshape(-1, 2)
    light = np.asarray(light, dtype=bool).reshape(-1)
    if len(light) != len(truth):
        raise AtomlocInputError(f"light has {len(light)} entries, truth_xy {len(truth)} columns")
    sy, sx = (float(sampling_A),) * 2 if np.ndim(sampling_A) == 0 else (float(s) for s in sampling_A)
    spacing = _spacing_px(truth)
    full, matches = score_detections(pred, truth, shape, spacing_px=spacing, return_matches=True)

    def recall(keep):
        if not keep.any():
            return float("nan")
        return score_detections(pred, truth[keep], shape, spacing_px=spacing, ignore=truth[~keep]).recall

    if len(matches):
        d = pred[matches[:, 0]] - truth[matches[:, 1]]
        rmse_pm = 100.0 * float(np.sqrt(np.mean((d[:, 0] * sx) ** 2 + (d[:, 1] * sy) ** 2)))
    else:
        rmse_pm = float("nan")
    return {"n": int(len(pred)), "f1": float(full.f1), "precision": float(full.precision),
            "recall_heavy": float(recall(~light)), "recall_light": float(recall(light)), "rmse_pm": rmse_pm}


def light_columns(labels: Sequence[str]) -> np.ndarray:
    """True where a column label (``Mo``, ``S2``, ``SrO`` ...) names only light elements
    (:data:`atomloc.simulate.fourd.LIGHT_ELEMENTS`)."""
    from atomloc.simulate.fourd import LIGHT_ELEMENTS

    out = []
    for label in labels:
        elements = re.findall(r"[A-Z][a-z]?", str(label))
        out.append(bool(elements) and all(e in LIGHT_ELEMENTS for e in elements))
    return np.array(out, dtype=bool)


def noise_seed(seed: int, dose_index: int, draw: int) -> int:
    """The seed of one noise draw: from (``seed``, the dose's index, the draw's index)."""
    return int(np.random.SeedSequence([int(seed), int(dose_index), int(draw)]).generate_state(1)[0])


def haadf_anchor(material: str, *, scan_shape, scan_sampling_A, dose_e_per_A2: float, seed: int = 0,
                 energy_keV: float = 300.0, semiangle_mrad: float = 25.0):
    """The linear-model HAADF frame of the material at the scan's pixel size and a dose, with its truth.

    A :class:`atomloc.simulate.spec.SeriesSpec` of one frame (``frame_dose_e_per_A2=(dose,)``,
    in focus, no astigmatism, drift, scan distortion or jitter; the other imaging settings the
    spec's defaults), ``shape_px`` the scan shape (at least 16 per axis), ``pixel_size_pm`` the
    mean scan step.

    Parameters
    ----------
    material : str
        One of :data:`atomloc.simulate.structures.MATERIALS`.
    scan_shape : (int, int)
        Scan positions (ny, nx).
    scan_sampling_A : float or (float, float)
        Scan step (y, x), Å.
    dose_e_per_A2 : float
        Dose of the frame, e/Å².
    seed : int
        Seed of every random draw of the frame (the field's origin, the noise).
    energy_keV, semiangle_mrad : float
        Beam energy and convergence semi-angle.

    Returns
    -------
    image : ndarray of float32, shape (H, W)
        Detector counts.
    truth_xy : ndarray, shape (m, 2)
        True columns (x, y), pixels.
    light : ndarray of bool, shape (m,)
        The light columns (:func:`light_columns`).
    """
    from atomloc.simulate.series import simulate_series
    from atomloc.simulate.spec import SeriesSpec

    step_A = float(np.mean(np.broadcast_to(np.asarray(scan_sampling_A, dtype=np.float64), (2,))))
    shape = tuple(max(16, int(n)) for n in scan_shape)
    spec = SeriesSpec(material=material, shape_px=shape, pixel_size_pm=100.0 * step_A, n_frames=1,
                      energy_keV=float(energy_keV), semiangle_mrad=float(semiangle_mrad), defocus_nm=(0.0, 0.0),
                      astigmatism_nm=0.0, frame_dose_e_per_A2=(float(dose_e_per_A2),), frame_defocus_nm=(0.0,),
                      drift_px_per_frame=0.0, scan_creep_px=0.0, scan_wobble_px=0.0, scan_jitter_px=0.0,
                      seed=int(seed))
    series = simulate_series(spec, name=f"{material}_haadf")
    truth = series.truth
    return series.frames[0], truth.positions(0), light_columns(truth.element)


def reference_phase(phase: np.ndarray, sampling_A, *, energy_keV: float, semiangle_mrad: float, scan_sampling_A,
                    scan_origin_A, scan_shape) -> np.ndarray:
    """The true phase as far as a ptychographic reconstruction can recover it, on the scan grid.

    ``phase`` (a periodic grid with pixel (0, 0) at the origin,
    :func:`atomloc.simulate.fourd.projected_phase`) is band-limited to the spatial
    frequencies the scan transfers, |k| <= 2 alpha / lambda (the diameter of the
    bright-field disc), then resampled onto the scan grid exactly as the
    reconstruction's phase is (:func:`atomloc.ptycho.reconstruct.phase_on_scan_grid`,
    anti-aliased).

    Returns
    -------
    ndarray of float64, shape ``scan_shape``
        Radians.
    """
    from atomloc.core.optics import electron_wavelength_A
    from atomloc.ptycho.reconstruct import phase_on_scan_grid

    phase = np.asarray(phase, dtype=np.float64)
    sy, sx = np.broadcast_to(np.asarray(sampling_A, dtype=np.float64), (2,))
    ky = np.fft.fftfreq(phase.shape[0], sy)[:, None]
    kx = np.fft.fftfreq(phase.shape[1], sx)[None, :]
    cutoff = 2 * semiangle_mrad * 1e-3 / electron_wavelength_A(energy_keV)
    band = np.fft.ifft2(np.fft.fft2(phase) * (np.hypot(ky, kx) <= cutoff)).real
    return phase_on_scan_grid(band, object_sampling_A=(sy, sx), object_origin_A=(0.0, 0.0),
                              scan_sampling_A=scan_sampling_A, scan_origin_A=scan_origin_A,
                              scan_shape=scan_shape).astype(np.float64)


def phase_error(phase: np.ndarray, reference: np.ndarray, *, margin_px: int = 4) -> float:
    """Relative RMS error of a reconstructed phase against the reference, away from the scan's edges.

    A constant phase cannot be measured, so the mean difference is removed; the RMS of
    what is left is divided by the RMS of the reference about its mean (0: exact; 1: no
    better than a flat phase).  ``margin_px`` scan pixels along each edge are left out
    (there fewer probe positions overlap).
    """
    phase, reference = np.asarray(phase, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if phase.shape != reference.shape:
        raise AtomlocInputError(f"phase_error: shapes differ ({phase.shape} vs {reference.shape})")
    m = int(margin_px)
    inner = (slice(m, phase.shape[0] - m or None), slice(m, phase.shape[1] - m or None))
    diff = phase[inner] - reference[inner]
    ref = reference[inner] - reference[inner].mean()
    return float(np.sqrt(np.mean((diff - diff.mean()) ** 2) / np.mean(ref ** 2)))


def resolve_device(device: str = "auto") -> str:
    """``"auto"``: ``"cuda"`` when torch sees a GPU, else ``"cpu"``; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` checked.

    Raises :class:`AtomlocInputError` for any other name, or a CUDA device torch cannot see.
    """
    import re

    import torch

    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise AtomlocInputError(f"ptycho device {device!r}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AtomlocInputError(f"ptycho device {device!r}: torch sees no CUDA device here (use auto or cpu)")
    return device


def _locate(image: np.ndarray, method: str, params: dict, log: logging.Logger, what: str) -> np.ndarray:
    from atomloc.locate import locate

    try:
        found = locate(np.asarray(image, dtype=np.float64), method, **params)
    except AtomlocInputError as exc:  # e.g. no lattice found: nothing detected
        log.warning("%s, %s: no detections (%s)", what, method, exc)
        return np.empty((0, 2))
    return found[["x", "y"]].to_numpy(dtype=np.float64)


def ptycho_benchmark(material: str = "MoS2", *, doses: Sequence[float] = DOSES, seeds: int = 2,
                     scan_step_A: float = 0.3, min_size_A: float = 10.0, n_iterations: int = 10, batch_size: int = 64,
                     learning_rate: float = 0.02, locators: Sequence[str] = ("gaussfit", "log"), seed: int = 0,
                     device: str = "auto", locator_params: Mapping[str, dict] | None = None,
                     log: logging.Logger | None = None, **simulation) -> dict:
    """Score the ptychographic phase, vADF, iCoM and the HAADF anchor at each dose.

    The noise-free scan is simulated once; each dose and noise draw ``s`` gets the Poisson seed
    :func:`noise_seed` (``seed``, dose index, ``s``), which also seeds its HAADF frame.

    Parameters
    ----------
    material : str
        One of :data:`atomloc.simulate.structures.MATERIALS`.
    doses : sequence of float
        Doses, e/Å².
    seeds : int
        Noise draws per dose (>= 1).
    scan_step_A : float
        Requested scan step, Å (abTEM rounds the number of positions).
    min_size_A : float
        The rectangular cell is repeated to at least this size along x and y and the whole supercell
        scanned (MoS2 at 10 Å: 4 x 2 cells, 12.6 x 10.9 Å, 37 x 43 positions; at 7 Å: 3 x 2 cells,
        37 x 32 positions, about the smallest field in which the locators find the lattice unaided).
    n_iterations, batch_size, learning_rate
        Of :func:`atomloc.ptycho.reconstruct_ptycho` (its mini-batch order seeded by ``seed``).
    locators : sequence of str
        Registered :mod:`atomloc.locate` methods, run with their defaults on every image.
    seed : int
        Seed of the simulation, the noise draws and the reconstructions.
    device : str
        Torch device of the reconstruction; ``"auto"``: :func:`resolve_device`.
    locator_params : mapping of str to dict, optional
        Parameters of a locator overriding its defaults (e.g. ``{"gaussfit": {"spacing_px": 6}}``:
        a field of a few cells is too small for the spacing estimate).
    log : logging.Logger, optional
        Progress and locator failures (default: this module's logger).
    **simulation
        Further keywords of :func:`atomloc.simulate.fourd.simulate_4dstem` (``repeats``, which
        overrides ``min_size_A``, ``energy_keV``, ``semiangle_mrad``, ...).

    Returns
    -------
    dict
        ``rows``: DataFrame with :data:`ROW_COLUMNS`, one row per dose x draw x modality x method
        (``time_image_s``: seconds to make the image, ``time_locate_s``: the locator's); ``examples``: per dose,
        the first draw's ``images`` (modality -> image), ``truth`` (modality -> (truth_xy, light)),
        ``sampling_A`` (modality -> (sy, sx)); ``scan``: shape, step and the simulation's seconds.

    Raises
    ------
    AtomlocInputError
        No doses, a non-positive dose, ``seeds`` < 1, no locators, an unknown locator (before any
        simulation), or a bad simulation setting.
    """
    from atomloc.locate import get_method
    from atomloc.ptycho import reconstruct_ptycho
    from atomloc.ptycho.virtual import virtual_images
    from atomloc.simulate.fourd import apply_dose, simulate_4dstem

    log = log or logging.getLogger(__name__)
    doses = [float(d) for d in doses]
    if not doses or not all(np.isfinite(d) and d > 0 for d in doses):
        raise AtomlocInputError(f"doses must be one or more values > 0 (got {doses})")
    if int(seeds) < 1:
        raise AtomlocInputError(f"seeds must be >= 1 (got {seeds})")
    locators = list(locators)
    if not locators:
        raise AtomlocInputError("locators: give at least one registered method")
    for name in locators:
        get_method(name)
    locator_params = {name: dict((locator_params or {}).get(name, {})) for name in locators}
    device = resolve_device(device)

    t0 = time.perf_counter()
    scan = simulate_4dstem(material, scan_step_A=scan_step_A, min_size_A=min_size_A, dose_e_per_A2=None, seed=seed,
                           **simulation)
    sim_s = time.perf_counter() - t0
    calib = scan.calibration()
    truth = scan.truth_xy()
    light = np.asarray(scan.truth["light"], dtype=bool)
    sampling = tuple(float(s) for s in scan.scan_sampling_A)
    log.info("%s: 4D-STEM %s positions x %s pixels in %.1f s; %d columns (%d light)", material, scan.scan_shape,
             scan.detector_shape, sim_s, len(truth), int(light.sum()))

    rows, examples = [], {}
    for k, dose in enumerate(doses):
        for s in range(int(seeds)):
            noise = noise_seed(seed, k, s)
            data, _ = apply_dose(scan.data, dose, scan.scan_sampling_A, noise)
            images, seconds, truths, samplings = {}, {}, {}, {}
            t1 = time.perf_counter()
            result = reconstruct_ptycho(data, **calib, n_iterations=n_iterations, batch_size=batch_size,
                                        learning_rate=learning_rate, device=device, seed=seed)
            images["phase"] = result.phase_on_scan_grid()
            seconds["phase"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            virtual = virtual_images(data, semiangle_mrad=scan.semiangle_mrad, scan_sampling_A=scan.scan_sampling_A,
                                     angular_sampling_mrad=scan.angular_sampling_mrad,
                                     reciprocal_sampling_per_A=scan.reciprocal_sampling_per_A)
            images["vADF"], images["iCoM"] = virtual["adf"], virtual["icom"]
            seconds["vADF"] = seconds["iCoM"] = time.perf_counter() - t1
            for name in ("phase", "vADF", "iCoM"):
                truths[name], samplings[name] = (truth, light), sampling
            t1 = time.perf_counter()
            haadf, haadf_xy, haadf_light = haadf_anchor(material, scan_shape=scan.scan_shape,
                                                        scan_sampling_A=sampling, dose_e_per_A2=dose, seed=noise,
                                                        energy_keV=scan.energy_keV,
                                                        semiangle_mrad=scan.semiangle_mrad)
            images["HAADF"], seconds["HAADF"] = haadf, time.perf_counter() - t1
            truths["HAADF"] = (haadf_xy, haadf_light)
            samplings["HAADF"] = (float(np.mean(sampling)),) * 2
            log.info("dose %g, draw %d: reconstruction %.1f s on %s, loss %.4g -> %.4g", dose, s, seconds["phase"],
                     device, result.loss[0], result.loss[-1])
            for modality in MODALITIES:
                image = images[modality]
                txy, tlight = truths[modality]
                for method in locators:
                    t1 = time.perf_counter()
                    pred = _locate(image, method, locator_params[method], log,
                                   f"{material} dose {dose:g} draw {s} {modality}")
                    located = time.perf_counter() - t1
                    score = score_modality(pred, txy, tlight, image.shape, samplings[modality])
                    rows.append({"material": material, "dose_e_per_A2": dose, "noise_seed": s, "modality": modality,
                                 "method": method, **score, "time_image_s": seconds[modality],
                                 "time_locate_s": located})
            if s == 0:
                examples[dose] = {"images": images, "truth": truths, "sampling_A": samplings}
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    return {"rows": frame, "examples": examples,
            "scan": {"scan_shape": tuple(scan.scan_shape), "scan_sampling_A": sampling, "simulate_s": sim_s,
                     "device": device}}


def light_dose_to_detect(rows: pd.DataFrame, *, target: float = 0.95, by: Sequence[str] = ("material", "modality",
                                                                                               "method"),
                         n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The dose (e/Å²) at which the mean light-column recall first reaches ``target``, per group.

    :func:`atomloc.analysis.sweeps.dose_to_detect` on ``recall_light`` (read as its F1): the
    crossing log-linear between the doses run, the interval from resampling the noise draws.

    Returns
    -------
    DataFrame
        ``*by, dose_to_detect_e_per_A2, lo, hi, reached, below_range, dose_min_e_per_A2,
        dose_max_e_per_A2, n_images, text``.
    """
    from atomloc.analysis.sweeps import dose_to_detect

    scores = rows.drop(columns=["f1"], errors="ignore").rename(columns={"recall_light": "f1"})
    return dose_to_detect(scores, f1_target=target, by=list(by), n_boot=n_boot, seed=seed)


def ptycho_tables(rows: pd.DataFrame, *, target: float = 0.95, n_boot: int = 1000,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The modality summary and the light-column dose-to-detect table.

    Returns
    -------
    summary : DataFrame
        Per material x modality (:data:`MODALITIES` order) x method x dose: ``n_seeds`` and
        ``<metric>_mean, <metric>_lo, <metric>_hi`` (95 % bootstrap interval over the noise draws)
        of every metric of :data:`METRICS`.
    dose : DataFrame
        :func:`light_dose_to_detect`, in the same order.
    """
    from atomloc.analysis.chemistry import summary_table

    by = ["material", "modality", "method", "dose_e_per_A2"]
    summary = summary_table(rows, by=by, metrics=list(METRICS), n_boot=n_boot, seed=seed)
    summary = _modality_order(summary.rename(columns={"n_fields": "n_seeds"}), by)
    dose = _modality_order(light_dose_to_detect(rows, target=target, n_boot=n_boot, seed=seed),
                           ["material", "modality", "method"])
    return summary, dose


def _modality_order(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(MODALITIES)}
    key = table["modality"].map(lambda m: order.get(m, len(order)))
    rest = [c for c in by if c != "modality"]
    return (table.assign(_order=key).sort_values([rest[0], "_order", *rest[1:]], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def acceptance_lines(summary: pd.DataFrame, *, target: float = 0.95, ceiling: float = 0.8,
                     rmse_dose: float = 1.0e4, rmse_ratio: float = 0.5) -> pd.DataFrame:
    """Issue #20's acceptance checks per material and method, from :func:`ptycho_tables`' summary.

    - ``light``: some dose where the phase's mean light-column recall is >= ``target`` while
      vADF's and HAADF's are <= ``ceiling`` (``doses``: those doses, "" where none);
    - ``rmse``: at ``rmse_dose`` the phase's mean RMSE is <= ``rmse_ratio`` x vADF's
      (``phase_rmse_pm``, ``vadf_rmse_pm``; False where either is missing).

    Returns
    -------
    DataFrame
        ``material, method, light, doses, rmse, phase_rmse_pm, vadf_rmse_pm``.
    """
    out = []
    for (material, method), grp in summary.groupby(["material", "method"], sort=True):
        light = grp.pivot_table(index="dose_e_per_A2", columns="modality", values="recall_light_mean")
        ok = []
        if {"phase", "vADF", "HAADF"} <= set(light.columns):
            ok = [d for d, r in light.iterrows()
                  if r["phase"] >= target and r["vADF"] <= ceiling and r["HAADF"] <= ceiling]
        rmse = grp[np.isclose(grp["dose_e_per_A2"], rmse_dose)].set_index("modality")["rmse_pm_mean"]
        phase_rmse = float(rmse.get("phase", np.nan))
        vadf_rmse = float(rmse.get("vADF", np.nan))
        out.append({"material": material, "method": method, "light": bool(ok),
                    "doses": ", ".join(f"{d:g}" for d in ok), "rmse": bool(phase_rmse <= rmse_ratio * vadf_rmse),
                    "phase_rmse_pm": phase_rmse, "vadf_rmse_pm": vadf_rmse})
    return pd.DataFrame(out, columns=["material", "method", "light", "doses", "rmse", "phase_rmse_pm",
                                      "vadf_rmse_pm"])
