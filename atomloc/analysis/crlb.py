"""Cramér–Rao bound of the position of a Gaussian column in Poisson noise.
"""

from __future__ import annotations

import numpy as np

from atomloc.core.geometry import nearest_neighbour_spacing


def gaussian_position_crlb_px(amplitude_counts: float, sigma_px: float, background_counts: float,
                              radius_sigmas: float = 6.0) -> float:
    """Cramér–Rao bound on the 2-D position error of a Gaussian column in Poisson noise.

    Model per pixel: expected counts ``mu = B + A exp(-r^2 / 2 s^2)``; Fisher
    information of the centre along x, ``I_xx = sum_pixels (d mu / d x0)^2 / mu``
    (pixels on the integer grid, column centred on a pixel, out to
    ``radius_sigmas`` x ``s``).  By symmetry the centre decouples from ``A``,
    ``B`` and ``s``, so ``1 / I_xx`` bounds the variance of x0 with all of them
    unknown too.  Neighbouring columns are ignored (a lower bound still).

    Parameters
    ----------
    amplitude_counts : float
        Peak height ``A`` above background, counts.
    sigma_px : float
        Gaussian sigma ``s``, pixels.
    background_counts : float
        Background ``B`` per pixel, counts (>= 0).

    Returns
    -------
    float
        ``sqrt(1 / I_xx + 1 / I_yy)`` in pixels: the smallest achievable RMS
        2-D error (comparable with :attr:`DetectionScore.rmse_px`).  For ``B = 0``
        and ``s >> 1`` pixel it tends to ``sqrt(2) s / sqrt(N)``, ``N = 2 pi s^2 A``.
    """
    A, s, B = float(amplitude_counts), float(sigma_px), max(float(background_counts), 0.0)
    if not (A > 0 and s > 0 and np.isfinite(A) and np.isfinite(s)):
        return float("nan")
    r = int(np.ceil(radius_sigmas * s))
    d = np.arange(-r, r + 1, dtype=np.float64)
    dx, dy = np.meshgrid(d, d)
    g = np.exp(-(dx ** 2 + dy ** 2) / (2 * s * s))
    mu = B + A * g
    dmu = A * g * dx / (s * s)
    keep = mu > 0
    info = float(np.sum(dmu[keep] ** 2 / mu[keep]))
    return float(np.sqrt(2.0 / info)) if info > 0 else float("nan")


def _fits_at(image_counts: np.ndarray, ref_xy: np.ndarray, spacing_px: float | None):
    """Round Gaussians + background fitted at the reference positions (disc radius 0.4 x spacing),
    iterated to convergence of amplitude, width and background (100 Levenberg–Marquardt steps).

    Returns ``(fit, inside)``: the fit of the columns inside the image by more
    than the disc radius, and that mask over ``ref_xy``; ``(None, inside)``
    when there is nothing to fit.
    """
    from atomloc.locate.refine import fit_gaussians

    ref_xy = np.asarray(ref_xy, dtype=np.float64).reshape(-1, 2)
    if len(ref_xy) < 2:
        return None, np.zeros(len(ref_xy), bool)
    spacing = nearest_neighbour_spacing(ref_xy) if spacing_px is None else float(spacing_px)
    radius = max(0.4 * spacing, 1.5)
    h, w = np.shape(image_counts)
    inside = ((ref_xy[:, 0] >= radius) & (ref_xy[:, 0] <= w - 1 - radius)
              & (ref_xy[:, 1] >= radius) & (ref_xy[:, 1] <= h - 1 - radius))
    if not inside.any():
        return None, inside
    # Iterated until every parameter has converged (tol_px=0: max_iter steps), not only the centres: at the
    # reference positions the centres hardly move, and stopping on them leaves amplitude and width half-fitted.
    fit = fit_gaussians(image_counts, ref_xy[inside, 0], ref_xy[inside, 1], radius, sigma_px=0.25 * spacing,
                        max_iter=100, tol_px=0.0)
    return (fit if fit.ok.any() else None), inside


def image_crlb_px(image_counts: np.ndarray, ref_xy: np.ndarray, spacing_px: float | None = None) -> float:
    """CRLB (pixels) of a typical column of an image in detector counts.

    Round Gaussians plus background are fitted (:func:`atomloc.locate.refine.fit_gaussians`,
    disc radius 0.4 x spacing) at the reference positions; the bound of
    :func:`gaussian_position_crlb_px` is evaluated for the median accepted
    amplitude, sigma and background.  It therefore reflects this frame's dose
    and column width.  NaN if no fit is accepted.

    Parameters
    ----------
    image_counts : ndarray, shape (H, W)
        Frame in detector counts (electrons), as the simulator writes it.
    ref_xy : ndarray, shape (m, 2)
        Reference positions (x, y), pixels.
    spacing_px : float, optional
        Nearest-neighbour spacing (default: from ``ref_xy``).
    """
    fit, _ = _fits_at(image_counts, ref_xy, spacing_px)
    if fit is None:
        return float("nan")
    return gaussian_position_crlb_px(np.median(fit.amplitude[fit.ok]), np.median(fit.sigma[fit.ok]),
                                     np.median(fit.background[fit.ok]))


def column_crlb_px(image_counts: np.ndarray, ref_xy: np.ndarray, spacing_px: float | None = None) -> np.ndarray:
    """CRLB (pixels) of each reference column from its own fitted amplitude, width and background.

    As :func:`image_crlb_px`, but the bound of every column is evaluated for
    the Gaussian fitted at that column (a faint sublattice gets its own, larger
    bound), so that a method's RMSE over the columns it matched can be compared
    with the bound over the same columns.  Columns whose fit is not accepted
    take the median parameters of the accepted fits; columns too close to the
    edge to fit, and every column when no fit is accepted, are NaN.

    Parameters
    ----------
    image_counts : ndarray, shape (H, W)
        Frame in detector counts.
    ref_xy : ndarray, shape (m, 2)
        Reference positions (x, y), pixels.
    spacing_px : float, optional
        Nearest-neighbour spacing (default: from ``ref_xy``).

    Returns
    -------
    ndarray, shape (m,)
        Bound per column, pixels.
    """
    out = np.full(len(np.asarray(ref_xy).reshape(-1, 2)), np.nan)
    fit, inside = _fits_at(image_counts, ref_xy, spacing_px)
    if fit is None:
        return out
    ok = fit.ok & (fit.amplitude > 0) & (fit.sigma > 0)
    med = [np.median(v[fit.ok]) for v in (fit.amplitude, fit.sigma, fit.background)]
    params = [np.where(ok, v, m) for v, m in zip((fit.amplitude, fit.sigma, fit.background), med)]
    out[np.flatnonzero(inside)] = [gaussian_position_crlb_px(a, s, b) for a, s, b in zip(*params)]
    return out
