"""Geometry of point sets and sampled peaks, in pixels (x = column index, pixel centres at integers)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def nearest_neighbour_spacing(xy: np.ndarray) -> float:
    """Mean distance from each point to its nearest other point (pixels)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy) < 2:
        return float("nan")
    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.mean(d[:, 1]))


def rotated_lattice_px(cell_A: np.ndarray, rotation_deg: float, pixel_size_pm: float) -> np.ndarray:
    """In-plane lattice vectors (rows, pixels) of a cell rotated as the simulator rotates it."""
    theta = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return np.asarray(cell_A, dtype=np.float64)[:2, :2] @ rot.T / (pixel_size_pm / 100.0)


def parabolic_vertex(f_minus, f_0, f_plus, max_shift: float | None = None):
    """Offset of the vertex of the parabola through (-1, f_minus), (0, f_0), (1, f_plus).

    The one sub-sample peak estimate of the package (cross-correlation, autocorrelation,
    Fourier and confidence-map peaks; through the logarithm of the samples it is exact
    for a Gaussian).  Where the three samples are not concave (no maximum) the offset
    is 0.

    Parameters
    ----------
    f_minus, f_0, f_plus : float or ndarray
        Samples at -1, 0 and +1 (same shape).
    max_shift : float, optional
        Clip the offset to ``[-max_shift, max_shift]`` (samples).

    Returns
    -------
    float or ndarray
        Offset in samples from the middle sample, in the samples' precision; a
        float for scalar input.
    """
    fm, f0, fp = (np.asarray(v) for v in (f_minus, f_0, f_plus))  # keeps float32 maps in float32
    denom = fm - 2 * f0 + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(denom < 0, 0.5 * (fm - fp) / denom, 0.0)
    if max_shift is not None:
        shift = np.clip(shift, -max_shift, max_shift)
    return float(shift) if shift.ndim == 0 else shift
