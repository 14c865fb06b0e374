"""Synthetic test data with known truth, for the tests and for users checking a method (in the spirit
of Atomap's ``testing_tools``).

Coordinates: pixels, x = column index, centre of pixel (0, 0) at (0.0, 0.0).
"""

from __future__ import annotations

import numpy as np

from atomloc.io.series import Series
from atomloc.simulate import SeriesSpec, simulate_series
from atomloc.simulate.render import render_columns

MOS2_NN_A = 3.16 / np.sqrt(3)  # Mo-S2 column spacing of 2H-MoS2, Å


def mos2_frame(spacing_px: float = 9.12, shape=(192, 192), electrons_per_px: float = 400.0, rotation_deg: float = 17.0,
               seed: int = 0, n_frames: int = 1) -> Series:
    """A simulated 2H-MoS2 series whose Mo-S2 spacing is ``spacing_px`` pixels.

    The dose is set so that each pixel receives ``electrons_per_px`` electrons
    whatever the pixel size; the probe is in focus and free of astigmatism.
    """
    px_pm = 100 * MOS2_NN_A / spacing_px
    dose = electrons_per_px / (px_pm / 100) ** 2
    spec = SeriesSpec(material="MoS2", shape_px=tuple(shape), pixel_size_pm=px_pm, n_frames=n_frames,
                      rotation_deg=rotation_deg, dose_e_per_A2=(dose, dose), defocus_nm=(0.0, 0.0),
                      astigmatism_nm=0.0, seed=seed)
    return simulate_series(spec)


def square_lattice(spacing_px: float, shape=(160, 160), sigma_frac: float = 0.2, counts: float = 200.0, seed: int = 0,
                   angle_deg: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson image of a rotated square lattice of equal Gaussian columns, and its truth.

    Parameters
    ----------
    spacing_px : float
        Lattice constant, pixels.
    shape : (int, int)
        Image shape (H, W).
    sigma_frac : float
        Column sigma in units of the spacing.
    counts : float
        Peak counts of a column above a background of 5 counts.
    seed : int
        Seed of the lattice offset and the Poisson noise.
    angle_deg : float
        Rotation of the lattice, degrees.

    Returns
    -------
    image : ndarray of float64, shape (H, W)
    truth : ndarray, shape (m, 2)
        Column positions (x, y), pixels.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    n = int(np.ceil(1.5 * max(h, w) / spacing_px)) + 2
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    t = np.deg2rad(angle_deg)
    x = spacing_px * (ii * np.cos(t) - jj * np.sin(t)) + w / 2 + rng.uniform(0, 1)
    y = spacing_px * (ii * np.sin(t) + jj * np.cos(t)) + h / 2 + rng.uniform(0, 1)
    keep = (x > -spacing_px) & (x < w + spacing_px) & (y > -spacing_px) & (y < h + spacing_px)
    x, y = x[keep].ravel(), y[keep].ravel()
    img = 5.0 + render_columns(shape, x, y, np.full(len(x), counts), sigma_frac * spacing_px)
    return rng.poisson(img).astype(np.float64), np.column_stack([x, y])
