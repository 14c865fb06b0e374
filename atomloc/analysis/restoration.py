"""How close a restored image comes to the noise-free truth, and whether restoring first helps locating.

* :func:`image_quality`: PSNR and SSIM of an image against its truth (scikit-image);
* :func:`background_free_truth`: the noise-free columns of a simulated frame;
* :func:`restoration_quality`: every restoration on every frame, each scored against
  the truth of what it claims to give (the expected image for a denoiser, the columns
  alone for a restoration that also removes the background);
* :func:`restoration_effect`: per frame, a restore-then-locate method's F1 and RMSE
  minus those of the same method on the raw image, with bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from atomloc.analysis.sweeps import bootstrap_mean_ci
from atomloc.core.errors import AtomlocInputError
from atomloc.locate.registry import CHAIN_SEP, split_method

BACKGROUND_FREE = ("denoise_bg", "bg")
"""Restorations whose output has no background: scored against the columns alone."""

SHARPENING = ("superres", "rl")
"""Restorations that sharpen the columns beyond the probe: no noise-free frame is their truth, so
:func:`restoration_quality` does not score them (locating on them is scored instead)."""

RAW = "none"
"""The name of the unrestored image in the tables."""


def image_quality(image: np.ndarray, truth: np.ndarray) -> dict:
    """PSNR (dB) and SSIM of ``image`` against ``truth``, data range = the truth's peak-to-peak.

    Uses :func:`skimage.metrics.peak_signal_noise_ratio` and
    :func:`skimage.metrics.structural_similarity` (7 x 7 window).
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    image = np.asarray(image, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if image.shape != truth.shape:
        raise AtomlocInputError(f"image_quality: shapes differ {image.shape} vs {truth.shape}")
    rng = float(np.ptp(truth)) or 1.0
    return {"psnr_db": float(peak_signal_noise_ratio(truth, image, data_range=rng)),
            "ssim": float(structural_similarity(truth, image, data_range=rng))}


def background_free_truth(clean: np.ndarray, dose_e_per_A2: float, pixel_size_pm: float,
                          background_fraction: float) -> np.ndarray:
    """The columns alone of a simulated frame: its expected counts minus the constant background.

    ``clean`` is :func:`atomloc.simulate.series.simulate_series`'s expected frame
    (``return_clean=True``), ``dose * (px in Å)**2 * (background_fraction + columns)``
    for a series without ramp or contamination (the caller checks).
    """
    px_A = pixel_size_pm / 100.0
    return np.asarray(clean, dtype=np.float64) - float(dose_e_per_A2) * px_A ** 2 * float(background_fraction)


def truth_kind(restoration: str) -> str:
    """``"no_background"`` where a step of the chain removes the background, else ``"no_noise"``.

    Raises
    ------
    AtomlocInputError
        For a chain with a sharpening step (:data:`SHARPENING`), which has no noise-free truth here.
    """
    steps = restoration.split(CHAIN_SEP)
    sharp = [s for s in steps if s in SHARPENING]
    if sharp:
        raise AtomlocInputError(f"restoration {restoration!r}: {', '.join(sharp)} sharpens the columns beyond the "
                                "probe, so no noise-free frame is its truth; score it by locating on it "
                                "(restore-then-locate) instead")
    return "no_background" if any(s in BACKGROUND_FREE for s in steps) else "no_noise"


def restoration_quality(frames: np.ndarray, clean: np.ndarray, no_background: np.ndarray, spacing_px: float,
                        restorations: Sequence[str], restore) -> pd.DataFrame:
    """Every restoration on every frame against its truth.

    Parameters
    ----------
    frames, clean, no_background : ndarray, shape (n, H, W)
        Noisy frames, their expected images and their columns alone (same units).
    spacing_px : float
        Column spacing, pixels (given to each restoration).
    restorations : sequence of str
        Registered restorations or chains (:func:`atomloc.locate.restore.restore`).
    restore : callable
        ``restore(image, restoration, spacing_px) -> image``, called one step at a
        time: a chain's steps already run for another entry (``bm3d`` for
        ``bm3d+bg``) are taken from that entry, not run again.

    Returns
    -------
    DataFrame
        One row per frame and restoration (``none``: the raw frame against both
        truths): ``frame, restoration, truth, psnr_db, ssim, time_s`` (seconds of the restoration, the
        whole chain's).
    """
    import time

    kinds = {name: truth_kind(name) for name in restorations}  # checked before any work
    rows = []
    for k, frame in enumerate(frames):
        truths = {"no_noise": clean[k], "no_background": no_background[k]}
        for kind, truth in truths.items():
            rows.append({"frame": k, "restoration": RAW, "truth": kind, **image_quality(frame, truth), "time_s": 0.0})
        done = {}  # chain prefix -> (restored frame, seconds): bm3d and bm3d+bg run BM3D once
        for name in restorations:
            steps = name.split(CHAIN_SEP)
            n = max((i for i in range(1, len(steps) + 1) if CHAIN_SEP.join(steps[:i]) in done), default=0)
            out, seconds = done[CHAIN_SEP.join(steps[:n])] if n else (frame, 0.0)
            for i in range(n, len(steps)):
                t0 = time.perf_counter()
                out = restore(out, steps[i], spacing_px)
                seconds += time.perf_counter() - t0
                done[CHAIN_SEP.join(steps[:i + 1])] = (out, seconds)
            kind = kinds[name]
            rows.append({"frame": k, "restoration": name, "truth": kind, **image_quality(out, truths[kind]),
                         "time_s": seconds})
    return pd.DataFrame(rows)


def restoration_effect(rows: pd.DataFrame, *, by: Sequence[str] = ("material", "dose_e_per_A2"),
                       metrics: Sequence[str] = ("f1", "rmse_pm"), n_boot: int = 1000, level: float = 0.95,
                       seed: int = 0) -> pd.DataFrame:
    """What restoring first changes, per restore-then-locate method and group, paired by frame.

    Parameters
    ----------
    rows : DataFrame
        Per-frame scores (:func:`atomloc.analysis.sweeps.sweep_rows`) of methods
        ``m`` and ``m@r`` on the same frames (``dataset, frame`` identify a frame).
    by : sequence of str
        Grouping columns (e.g. material and dose).
    metrics : sequence of str
        Columns compared; the difference is ``m@r - m`` (F1: > 0 helps; RMSE: < 0 helps).

    Returns
    -------
    DataFrame
        ``method`` (``m@r``), ``base`` (``m``), ``restoration``, the ``by`` columns,
        ``n_images`` and per metric ``d_<metric>_mean, _lo, _hi`` (bootstrap over the
        frames) and ``helps_<metric>``: ``yes`` / ``no`` (the interval excludes 0 in
        the helpful / harmful direction) or ``tie``.
    """
    out = []
    restored = sorted(m for m in rows["method"].unique() if split_method(m)[1] is not None)
    for k, method in enumerate(restored):
        base, chain = split_method(method)
        if base not in set(rows["method"]):
            continue
        keys = ["dataset", "frame", *by]
        a = rows[rows["method"] == method].set_index(keys)[list(metrics)]
        b = rows[rows["method"] == base].set_index(keys)[list(metrics)]
        diff = (a - b).dropna(how="all").reset_index()
        for group, part in diff.groupby(list(by), sort=True):
            row = {"method": method, "base": base, "restoration": chain, **dict(zip(by, np.atleast_1d(group))),
                   "n_images": len(part)}
            for j, m in enumerate(metrics):
                mean, lo, hi = bootstrap_mean_ci(part[m], n_boot=n_boot, level=level, seed=seed + 1000 * k + j)
                better = (lo > 0) if m == "f1" else (hi < 0)
                worse = (hi < 0) if m == "f1" else (lo > 0)
                row.update({f"d_{m}_mean": mean, f"d_{m}_lo": lo, f"d_{m}_hi": hi,
                            f"helps_{m}": "yes" if better else ("no" if worse else "tie")})
            out.append(row)
    return pd.DataFrame(out)


def quality_table(rows: pd.DataFrame, *, by: Sequence[str] = ("restoration", "truth", "dose_e_per_A2"),
                  n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """PSNR and SSIM of :func:`restoration_quality` rows per group: mean with a bootstrap interval.

    Returns
    -------
    DataFrame
        The ``by`` columns, ``n_images``, ``psnr_db_mean, _lo, _hi``, ``ssim_mean, _lo, _hi``
        and ``time_s_per_frame`` (seconds).
    """
    out = []
    for k, (group, part) in enumerate(rows.groupby(list(by), sort=True)):
        row = {**dict(zip(by, np.atleast_1d(group))), "n_images": len(part)}
        for j, m in enumerate(("psnr_db", "ssim")):
            mean, lo, hi = bootstrap_mean_ci(part[m], n_boot=n_boot, level=level, seed=seed + 2 * k + j)
            row.update({f"{m}_mean": mean, f"{m}_lo": lo, f"{m}_hi": hi})
        row["time_s_per_frame"] = float(part["time_s"].mean())
        out.append(row)
    return pd.DataFrame(out)
