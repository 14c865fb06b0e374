"""Strain fields applied to a simulated specimen (the truth of the strain benchmark).
"""

from __future__ import annotations

import numpy as np

from atomloc.core.errors import AtomlocInputError

STRAIN_FIELDS = ("none", "uniform", "gradient", "bulge")


def applied_strain(xy_A: np.ndarray, centre_A, field: str, magnitude: float, radius_A: float,
                   width_A: float) -> tuple[np.ndarray, np.ndarray]:
    """Displacement and exact small strain of an applied strain field.

    Parameters
    ----------
    xy_A : ndarray, shape (n, 2)
        Undisplaced positions (x, y), Å.
    centre_A : (float, float)
        Centre of the field of view, Å (origin of the fields).
    field : str
        ``none``; ``uniform``: biaxial ``eps_xx = eps_yy = magnitude``;
        ``gradient``: ``eps_xx`` rising linearly along x from ``-magnitude/2``
        at the left edge to ``+magnitude/2`` at the right edge (``u_x = m x^2 /
        (2 width)``, x from the centre); ``bulge``: radial displacement
        ``u = m r exp(-r^2 / (2 R^2))`` around the centre (a dilating dopant),
        hydrostatic strain ``m exp(-r^2/2R^2) (1 - r^2 / 2R^2)``.
    magnitude : float
        ``m`` above (dimensionless).
    radius_A : float
        ``R`` of the bulge, Å.
    width_A : float
        Width of the field of view, Å (scale of the gradient).

    Returns
    -------
    displacement_A : ndarray, shape (n, 2)
    strain : ndarray, shape (n, 3)
        Exact ``eps_xx, eps_yy, eps_xy`` at each undisplaced position (the
        rotation of these fields is zero).
    """
    if field not in STRAIN_FIELDS:
        raise AtomlocInputError(f"strain_field: must be one of {', '.join(STRAIN_FIELDS)} (got {field!r})")
    r = np.asarray(xy_A, dtype=np.float64).reshape(-1, 2) - np.asarray(centre_A, dtype=np.float64)
    x, y = r[:, 0], r[:, 1]
    u = np.zeros_like(r)
    eps = np.zeros((len(r), 3))
    m = float(magnitude)
    if field == "uniform":
        u = m * r
        eps[:, 0] = eps[:, 1] = m
    elif field == "gradient":
        u[:, 0] = m * x ** 2 / (2.0 * width_A)
        eps[:, 0] = m * x / width_A
    elif field == "bulge":
        g = np.exp(-(x ** 2 + y ** 2) / (2.0 * radius_A ** 2))
        u = m * r * g[:, None]
        eps[:, 0] = m * g * (1.0 - x ** 2 / radius_A ** 2)
        eps[:, 1] = m * g * (1.0 - y ** 2 / radius_A ** 2)
        eps[:, 2] = -m * g * x * y / radius_A ** 2
    return u, eps
