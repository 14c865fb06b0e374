"""Frame quality, rigid drift and non-rigid (slow-scan) alignment of an image series.

Drift convention: ``drift_px[k] = (dx, dy)`` means that the specimen point seen
at pixel position p in the reference frame is seen at p + drift in frame k.
Positions therefore move from the reference frame into frame k by adding the
drift, and frame k is aligned onto the reference by shifting it by -drift.

The non-rigid step models what rigid alignment leaves behind in STEM: shifts
that change slowly along the slow-scan axis (drift and creep during a frame).
``row_shift_px[k][i] = (dx, dy)`` is the extra shift, beyond the rigid drift,
of the point seen in row i of the reference frame: a reference position
(x, y) is seen in frame k at (x, y) + drift[k] + row_shift[k](y)
(:func:`transfer_positions`).  It is measured by normalised cross-correlation of
horizontal strips of the reference with the rigidly aligned frame
(``skimage.feature.match_template``), interpolated to every row and smoothed
along the rows (:func:`estimate_row_shifts`).  Dense optical flow
(``skimage.registration.optical_flow_ilk``) was tried first: its coarse-to-fine
pyramid aliases the lattice and jumps to neighbouring columns over whole bands
of rows.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from atomloc.core.geometry import parabolic_vertex


def frame_quality(frame: np.ndarray, noise_band: float = 0.75, peak_factor: float = 10.0) -> float:
    """Lattice-peak power over the noise floor of the power spectrum.

    The white-noise floor is the median power beyond ``noise_band`` x Nyquist;
    the score is the summed excess power of the Fourier pixels more than
    ``peak_factor`` x the floor (the Bragg spots), divided by the total noise
    power of the frame.  Higher means a clearer lattice.
    """
    f = np.asarray(frame, dtype=np.float64)
    power = np.abs(np.fft.fft2(f - f.mean())) ** 2
    ky = np.fft.fftfreq(f.shape[0])[:, None]
    kx = np.fft.fftfreq(f.shape[1])[None, :]
    k = np.hypot(kx, ky) / 0.5  # 1 at Nyquist along an axis
    noise = np.median(power[k > noise_band])
    if noise <= 0:
        noise = np.finfo(float).tiny
    bragg = (power > peak_factor * noise) & (k > 2.0 / min(f.shape))
    return float(np.sum(power[bragg] - noise) / (noise * power.size))


def estimate_drift(frames: np.ndarray, reference_index: int, upsample_factor: int = 20,
                   smooth_sigma_px: float = 1.0) -> np.ndarray:
    """Rigid drift of every frame relative to the reference frame.

    Phase cross-correlation (``skimage.registration.phase_cross_correlation``,
    no phase normalisation, which is steadier at low counts) of lightly smoothed
    frames, refined to 1 / ``upsample_factor`` pixel.  On a perfect crystal a
    shift by a lattice vector matches as well as the true one; such an error
    still carries labels onto columns (see :func:`transfer_error_px`).

    Returns
    -------
    ndarray, shape (n, 2)
        Drift (dx, dy) in pixels of each frame; zero for the reference.
    """
    from skimage.registration import phase_cross_correlation

    frames = np.asarray(frames, dtype=np.float64)
    prep = [_standardise(f, smooth_sigma_px) for f in frames]
    drift = np.zeros((len(frames), 2))
    for k, moving in enumerate(prep):
        if k == reference_index:
            continue
        shift, _, _ = phase_cross_correlation(prep[reference_index], moving, upsample_factor=upsample_factor,
                                              normalization=None)
        drift[k] = (-shift[1], -shift[0])
    return drift


def apply_drift(frames: np.ndarray, drift_px: np.ndarray, order: int = 3) -> np.ndarray:
    """Resample every frame onto the reference frame by shifting it by -drift.

    Pixels brought in from beyond the frame edge repeat the nearest edge pixel.
    """
    out = np.empty(np.shape(frames), dtype=np.float32)
    for k, (frame, (dx, dy)) in enumerate(zip(frames, drift_px)):
        out[k] = ndimage.shift(np.asarray(frame, dtype=np.float64), (-dy, -dx), order=order, mode="nearest")
    return out


def _standardise(frame, smooth_sigma_px):
    f = np.asarray(frame, dtype=np.float64)
    if smooth_sigma_px > 0:
        f = ndimage.gaussian_filter(f, smooth_sigma_px)
    std = f.std()
    return (f - f.mean()) / (std if std > 0 else 1.0)


def estimate_row_shifts(reference: np.ndarray, moving: np.ndarray, drift_px, strip_rows: int = 24,
                        step_rows: int = 8, max_shift_px: float = 4.0, smooth_sigma_px: float = 1.0,
                        row_sigma_px: float = 4.0) -> np.ndarray:
    """Slow-scan (row-wise) shift of ``moving`` relative to ``reference`` beyond the rigid drift.

    ``moving`` is shifted by -drift onto the reference; both frames are
    smoothed and standardised (frames of a series differ in dose).  For strips
    of ``strip_rows`` reference rows every ``step_rows`` rows, the strip is
    located in the rigidly aligned frame by normalised cross-correlation
    (``skimage.feature.match_template``) over shifts up to ``max_shift_px``,
    refined by a parabola through the peak.  The search is kept small on
    purpose: a crystal matches itself at every lattice vector, so only a
    residual shorter than half the lattice period is found without ambiguity.
    The strip shifts are interpolated to every row and smoothed along the rows
    by a Gaussian of ``row_sigma_px`` rows.

    Parameters
    ----------
    reference, moving : ndarray, shape (H, W)
    drift_px : (dx, dy)
        Rigid drift of ``moving`` (:func:`estimate_drift`).
    strip_rows, step_rows : int
        Strip height and spacing, rows.
    max_shift_px : float
        Largest residual shift searched, pixels.
    smooth_sigma_px : float
        Gaussian smoothing of both frames first, pixels.
    row_sigma_px : float
        Smoothing of the per-row shifts along the slow-scan axis, rows.

    Returns
    -------
    ndarray, shape (H, 2)
        (dx, dy) per reference row, pixels.
    """
    from scipy.ndimage import gaussian_filter1d
    from skimage.feature import match_template

    h, w = reference.shape
    dx, dy = drift_px
    m = int(np.ceil(max_shift_px))
    half = max(2, int(strip_rows) // 2)
    if h < 2 * (half + m) + 1 or w < 2 * m + 8:
        raise ValueError(f"frame {reference.shape} too small for strips of {2 * half} rows and shifts of {m} px")
    rigid = ndimage.shift(np.asarray(moving, dtype=np.float64), (-dy, -dx), order=3, mode="nearest")
    a = _standardise(reference, smooth_sigma_px)
    b = _standardise(rigid, smooth_sigma_px)
    centres = np.arange(half + m, h - half - m, max(1, int(step_rows)))
    shifts = np.zeros((len(centres), 2))
    for n, c in enumerate(centres):
        template = a[c - half:c + half, m:w - m]
        ncc = match_template(b[c - half - m:c + half + m, :], template)  # (2m+1, 2m+1); (m, m) = no shift
        iy, ix = np.unravel_index(np.argmax(ncc), ncc.shape)
        sy = iy + (parabolic_vertex(*ncc[iy - 1:iy + 2, ix], max_shift=0.5) if 0 < iy < ncc.shape[0] - 1 else 0.0)
        sx = ix + (parabolic_vertex(*ncc[iy, ix - 1:ix + 2], max_shift=0.5) if 0 < ix < ncc.shape[1] - 1 else 0.0)
        shifts[n] = (sx - m, sy - m)
    rows = np.arange(h)
    per_row = np.column_stack([np.interp(rows, centres, shifts[:, j]) for j in range(2)])
    return gaussian_filter1d(per_row, row_sigma_px, axis=0, mode="nearest") if row_sigma_px > 0 else per_row


def transfer_positions(x_px, y_px, drift_px, row_shift_px: np.ndarray | None = None):
    """Carry reference-frame positions into a frame: p + drift + row_shift(y).

    ``row_shift_px`` (H, 2) is interpolated linearly at the reference row ``y``
    (and held constant beyond the first and last rows).
    """
    x = np.asarray(x_px, dtype=np.float64) + drift_px[0]
    y = np.asarray(y_px, dtype=np.float64) + drift_px[1]
    if row_shift_px is not None:
        rows = np.arange(len(row_shift_px), dtype=np.float64)
        yr = np.asarray(y_px, dtype=np.float64)
        x = x + np.interp(yr, rows, row_shift_px[:, 0])
        y = y + np.interp(yr, rows, row_shift_px[:, 1])
    return x, y


def warp_to_reference(frame: np.ndarray, drift_px, row_shift_px: np.ndarray | None = None,
                      order: int = 3) -> np.ndarray:
    """Resample a frame onto the reference grid: output(r, c) = frame at the transferred (c, r)."""
    h, w = frame.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = transfer_positions(cols.ravel(), rows.ravel(), drift_px, row_shift_px)
    out = ndimage.map_coordinates(np.asarray(frame, dtype=np.float64), [y, x], order=order, mode="nearest")
    return out.reshape(h, w).astype(np.float32)


ALIGNMENTS = ("rigid", "nonrigid")


def align_series(frames: np.ndarray, upsample_factor: int = 20, smooth_sigma_px: float = 1.0,
                 alignment: str = "nonrigid", strip_rows: int = 24, max_shift_px: float = 4.0,
                 row_sigma_px: float = 4.0) -> dict:
    """Pick the best frame by :func:`frame_quality` and align every frame onto it.

    Parameters
    ----------
    frames : ndarray, shape (n, H, W)
    upsample_factor, smooth_sigma_px
        See :func:`estimate_drift`.
    alignment : {"rigid", "nonrigid"}
        ``nonrigid`` adds the slow-scan step of :func:`estimate_row_shifts`.
    strip_rows, max_shift_px, row_sigma_px
        See :func:`estimate_row_shifts`.

    Returns
    -------
    dict
        ``aligned`` float32 [n, H, W] (by the chosen alignment); ``drift_px`` [n, 2]
        (dx, dy) relative to the reference; ``row_shift_px`` [n, H, 2] (zeros for
        ``rigid``); ``quality`` [n]; ``reference_index`` (int); ``alignment``.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS} (got {alignment!r})")
    frames = np.asarray(frames)
    quality = np.array([frame_quality(f) for f in frames])
    ref = int(np.argmax(quality))
    drift = estimate_drift(frames, ref, upsample_factor, smooth_sigma_px)
    row_shift = np.zeros((len(frames), frames.shape[1], 2))
    if alignment == "nonrigid":
        for k in range(len(frames)):
            if k != ref:
                row_shift[k] = estimate_row_shifts(frames[ref], frames[k], drift[k], strip_rows=strip_rows,
                                                   max_shift_px=max_shift_px, smooth_sigma_px=smooth_sigma_px,
                                                   row_sigma_px=row_sigma_px)
        aligned = np.stack([warp_to_reference(f, d, r) for f, d, r in zip(frames, drift, row_shift)])
    else:
        aligned = apply_drift(frames, drift)
    return {"aligned": aligned, "drift_px": drift, "row_shift_px": row_shift, "quality": quality,
            "reference_index": ref, "alignment": alignment}


def transfer_error_px(truth_x: np.ndarray, truth_y: np.ndarray, reference_index: int, drift_px: np.ndarray,
                      row_shift_px: np.ndarray | None, shape, margin_px: float = 0.0) -> np.ndarray:
    """RMS error (px) per frame of carrying the reference frame's true positions into each frame.

    The alignment alone is scored: the true positions of the reference frame
    are transferred (:func:`transfer_positions`) and each lands at some
    distance from the nearest true position of that frame; the RMS is taken
    over the transferred positions inside the frame (``margin_px`` from its
    edges).  The nearest column, not the same column, is the partner: on a
    perfect crystal an alignment off by a lattice vector still puts every
    label on a column, and that is what labels need.
    """
    from scipy.spatial import cKDTree

    h, w = shape
    out = np.zeros(len(drift_px))
    for k in range(len(drift_px)):
        rs = None if row_shift_px is None else row_shift_px[k]
        x, y = transfer_positions(truth_x[reference_index], truth_y[reference_index], drift_px[k], rs)
        inside = (x >= margin_px) & (x <= w - 1 - margin_px) & (y >= margin_px) & (y <= h - 1 - margin_px)
        if not inside.any():
            out[k] = np.nan
            continue
        d, _ = cKDTree(np.column_stack([truth_x[k], truth_y[k]])).query(np.column_stack([x[inside], y[inside]]))
        out[k] = float(np.sqrt(np.mean(d ** 2)))
    return out
