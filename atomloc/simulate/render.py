"""Rendering columns onto the scan grid: Gaussian columns, a tabulated point-spread
function, and the scan's row-wise distortion and line jitter.

Coordinates: pixels, x = column index, centre of pixel (0, 0) at (0.0, 0.0).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from atomloc.core.image import render_columns  # noqa: F401  (the renderer lives in core: locate uses it too)


def distorted_positions(x_px: np.ndarray, y_px: np.ndarray, row_shift_px: np.ndarray, n_iter: int = 20):
    """Where points at (x, y) appear in a frame scanned with row-wise shifts.

    Solves i - dy(i) = y for the (continuous) row i by fixed-point iteration,
    with dy interpolated linearly between rows (and held constant beyond the
    first and last row); the point then appears at (x + dx(i), i).

    Parameters
    ----------
    x_px, y_px : ndarray, shape (m,)
        Undistorted positions, pixels.
    row_shift_px : ndarray, shape (H, 2)
        (dx, dy) of each scan row, pixels (as in :func:`render_columns`).

    Returns
    -------
    x, y : ndarray, shape (m,)
    """
    rows = np.arange(len(row_shift_px), dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    i = y.copy()
    for _ in range(n_iter):
        i = y + np.interp(i, rows, row_shift_px[:, 1])
    return np.asarray(x_px, dtype=np.float64) + np.interp(i, rows, row_shift_px[:, 0]), i


def scan_distortion(n_rows: int, creep_px: float, wobble_px: float, wobble_rows: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Random slow-scan distortion of one frame: row-wise (dx, dy) shifts in pixels.

    A linear creep (shift of the last row relative to the first drawn from
    N(0, creep_px) per axis) plus a smooth random field (white noise along the
    rows smoothed by a Gaussian of ``wobble_rows`` rows, scaled to standard
    deviation ``wobble_px``); the mean over rows is removed, so the rigid drift
    of the frame stays its mean shift.

    Returns
    -------
    ndarray, shape (n_rows, 2)
    """
    from scipy.ndimage import gaussian_filter1d

    t = np.linspace(-0.5, 0.5, n_rows)[:, None]
    shift = t * rng.normal(0.0, creep_px, size=(1, 2))
    noise = gaussian_filter1d(rng.standard_normal((n_rows, 2)), wobble_rows, axis=0, mode="reflect")
    std = noise.std(axis=0)
    shift = shift + wobble_px * noise / np.where(std > 0, std, 1.0)
    return shift - shift.mean(axis=0)


def scan_jitter(n_rows: int, sigma_px: float, rng: np.random.Generator, cycles_per_frame: float | None = None
                ) -> np.ndarray:
    """Scan-line jitter of one frame: row-wise (dx, dy) offsets in pixels.

    The TEMImageNet noise model: row i is displaced by
    ``N(0, 1) * sigma_px * sin(2 pi f t_i + phi)`` along x and y independently,
    constant along the fast-scan direction, with ``t_i = i / n_rows``, a random
    phase ``phi`` and ``f`` cycles per frame (random in [1, 8) unless given).
    The result is used as ``row_shift_px`` of :func:`render_columns` (applied
    while sampling, not as a post-warp).

    Returns
    -------
    ndarray, shape (n_rows, 2)

    References
    ----------
    .. [1] R. Lin et al., Sci. Rep. 11, 5386 (2021): TEMImageNet and AtomSegNet (see
       :func:`atomloc.locate.learned.atomsegnet_locate`).
    """
    t = np.arange(n_rows)[:, None] / n_rows
    f = rng.uniform(1.0, 8.0) if cycles_per_frame is None else cycles_per_frame
    phase = rng.uniform(0, 2 * np.pi, size=(1, 2))
    return rng.standard_normal((n_rows, 2)) * sigma_px * np.sin(2 * np.pi * f * t + phase)


def render_psf(shape_px, x_px: np.ndarray, y_px: np.ndarray, amplitude: np.ndarray, psf: np.ndarray,
               oversample: int, row_shift_px: np.ndarray | None = None, max_points: int = 2 ** 22) -> np.ndarray:
    """Sum of point columns imaged through a tabulated point-spread function, sampled at the scan positions.

    Parameters
    ----------
    shape_px : (int, int)
        Output shape (H, W).
    x_px, y_px : ndarray, shape (m,)
        Column positions in pixels (x = column index).
    amplitude : ndarray, shape (m,)
        Weight of each column (multiplies the table).
    psf : ndarray, shape (n, n)
        Point-spread function sampled at ``1 / oversample`` pixels, centred on
        index ``n // 2`` (:func:`point_spread_function`); zero beyond the table.
    oversample : int
        Table samples per output pixel.
    row_shift_px : ndarray, shape (H, 2), optional
        Scan distortion: the probe of scan row i lands ``(dx, dy) = row_shift_px[i]``
        pixels short of its nominal position (as in :func:`render_columns`).
    max_points : int
        Table look-ups per chunk of columns (bounds memory).

    Returns
    -------
    ndarray of float64, shape (H, W)
        Pixel (i, j) holds the sum over columns of ``amplitude * psf`` at
        (column position - scan position of the pixel), interpolated linearly.
    """
    h, w = shape_px
    x_px = np.asarray(x_px, dtype=np.float64)
    y_px = np.asarray(y_px, dtype=np.float64)
    amplitude = np.asarray(amplitude, dtype=np.float64)
    shift = np.zeros((h, 2)) if row_shift_px is None else np.asarray(row_shift_px, dtype=np.float64)
    centre = np.array(psf.shape) // 2
    radius = int(min(centre) // oversample) + int(np.ceil(np.abs(shift).max())) + 1
    offsets = np.arange(-radius, radius + 1)
    cx = np.rint(x_px + shift[:, 0].mean()).astype(np.int64)
    cy = np.rint(y_px + shift[:, 1].mean()).astype(np.int64)
    out = np.zeros(h * w)
    chunk = max(1, max_points // len(offsets) ** 2)
    for start in range(0, len(x_px), chunk):
        sl = slice(start, start + chunk)
        iy = cy[sl, None] + offsets[None, :]  # (m, k)
        ix = cx[sl, None] + offsets[None, :]
        row = np.clip(iy, 0, h - 1)
        # PSF(column - scan position): the probe at s illuminates the column at r with |psi(r - s)|^2.
        u = (y_px[sl, None] - (iy - shift[row, 1])) * oversample + centre[0]  # (m, k)
        v = (x_px[sl, None, None] - (ix[:, None, :] - shift[row, 0][:, :, None])) * oversample + centre[1]
        u = np.broadcast_to(u[:, :, None], v.shape)
        vals = ndimage.map_coordinates(psf, [u.ravel(), v.ravel()], order=1, mode="constant", cval=0.0)
        vals = vals.reshape(v.shape) * amplitude[sl, None, None]
        valid = ((iy >= 0) & (iy < h))[:, :, None] & ((ix >= 0) & (ix < w))[:, None, :]
        flat = (iy[:, :, None] * w + ix[:, None, :])[valid]
        out += np.bincount(flat, weights=vals[valid], minlength=h * w)
    return out.reshape(h, w)
