"""Checks and normalisation of 2-D grey images."""

from __future__ import annotations

import numpy as np

from atomloc.core.errors import AtomlocInputError


def check_pixel_dtype(arr: np.ndarray, name: str = "image") -> None:
    """Raise :class:`AtomlocInputError` unless ``arr`` holds integer or float pixels (not bool, complex, object).

    Checked on a file's array before colour channels are combined, which would
    silently drop an imaginary part or turn booleans into numbers.
    """
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise AtomlocInputError(f"{name}: unsupported dtype {arr.dtype}; expected integer or float pixels")


def validate_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``image`` is a usable 2-D grey image and return it as float64.

    Parameters
    ----------
    image : ndarray
        Candidate image.
    name : str
        File or variable name used in error messages.

    Raises
    ------
    AtomlocInputError
        If the image is not 2-D, is smaller than 8 x 8 pixels, has a non-numeric
        dtype, contains NaN or infinity, or is constant.
    """
    arr = np.asarray(image)
    check_pixel_dtype(arr, name)
    if arr.ndim != 2:
        raise AtomlocInputError(f"{name}: expected a 2-D grey image, got shape {arr.shape}")
    if min(arr.shape) < 8:
        raise AtomlocInputError(f"{name}: image of shape {arr.shape} is too small (minimum 8 x 8 pixels)")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise AtomlocInputError(f"{name}: image contains {n_bad} NaN or infinite pixels")
    if np.ptp(arr) == 0:
        raise AtomlocInputError(f"{name}: image is constant (every pixel = {arr.flat[0]:g}); nothing to locate")
    return arr


def normalise(image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Scale an image so that its ``low_pct`` / ``high_pct`` percentiles map to 0 / 1."""
    lo, hi = np.percentile(image, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = image.min(), image.max()
    return (image - lo) / (hi - lo)


def resample(image: np.ndarray, factor: float) -> tuple[np.ndarray, tuple[float, float]]:
    """Resample ``image`` by ``factor`` (linear, anti-aliased when shrinking); return it and the exact factors.

    The output has ``round(n * factor)`` pixels along each axis, so the factor
    actually applied per axis is ``(H' / H, W' / W)``.  Pixel edges are aligned
    (the field of view is kept): a point at ``x`` in the input lies at
    ``(x + 0.5) * f - 0.5`` in the output (x = column index, pixel centres at
    integers); :func:`unresample_xy` maps back.  Uses scikit-image's ``resize``.
    """
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    shape = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
    out = resize(image, shape, order=1, mode="reflect", anti_aliasing=factor < 1, preserve_range=True)
    return out, (shape[0] / h, shape[1] / w)


def unresample_xy(xy: np.ndarray, factors: tuple[float, float]) -> np.ndarray:
    """Map positions (x, y) in pixels of an image made by :func:`resample` back to the original's pixels."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    fy, fx = factors
    return np.column_stack([(xy[:, 0] + 0.5) / fx - 0.5, (xy[:, 1] + 0.5) / fy - 0.5])


def render_columns(shape_px, x_px: np.ndarray, y_px: np.ndarray, amplitude: np.ndarray,
                   sigma_px, row_shift_px: np.ndarray | None = None) -> np.ndarray:
    """Sum of isotropic Gaussians point-sampled on a pixel grid.

    Parameters
    ----------
    shape_px : (int, int)
        Output shape (H, W).
    x_px, y_px : ndarray, shape (m,)
        Centres in pixels (x = column index).
    amplitude : ndarray, shape (m,)
        Peak value of each Gaussian.
    sigma_px : float or ndarray, shape (m,)
        Gaussian sigma in pixels (one for all, or one per column).
    row_shift_px : ndarray, shape (H, 2), optional
        Scan distortion: the probe of scan row i lands ``(dx, dy) = row_shift_px[i]``
        pixels short of its nominal position, so a point at (x, y) is imaged in row
        i where i - dy(i) = y, at x + dx(i) (see :func:`atomloc.simulate.render.distorted_positions`).

    Returns
    -------
    ndarray of float64, shape (H, W)
    """
    h, w = shape_px
    x_px = np.asarray(x_px, dtype=np.float64)
    y_px = np.asarray(y_px, dtype=np.float64)
    shift = np.zeros((h, 2)) if row_shift_px is None else np.asarray(row_shift_px, dtype=np.float64)
    margin = int(np.ceil(np.abs(shift).max())) + 1 if row_shift_px is not None else 0
    sigma = np.broadcast_to(np.asarray(sigma_px, dtype=np.float64), x_px.shape)[:, None]
    radius = int(np.ceil(5.0 * float(np.max(sigma, initial=0.0)))) + margin
    offsets = np.arange(-radius, radius + 1)
    cx = np.rint(x_px + shift[:, 0].mean()).astype(np.int64)
    cy = np.rint(y_px + shift[:, 1].mean()).astype(np.int64)
    ix = cx[:, None] + offsets[None, :]  # (m, k)
    iy = cy[:, None] + offsets[None, :]
    row = np.clip(iy, 0, h - 1)
    gy = np.exp(-0.5 * ((iy - shift[row, 1] - y_px[:, None]) / sigma) ** 2) * amplitude[:, None]
    gx = np.exp(-0.5 * ((ix[:, None, :] - shift[row, 0][:, :, None] - x_px[:, None, None]) / sigma[:, :, None]) ** 2)
    vals = gy[:, :, None] * gx  # (m, ky, kx)
    valid = ((iy >= 0) & (iy < h))[:, :, None] & ((ix >= 0) & (ix < w))[:, None, :]
    flat = (iy[:, :, None] * w + ix[:, None, :])[valid]
    return np.bincount(flat, weights=vals[valid], minlength=h * w).reshape(h, w)
