"""Batched 2-D Gaussian refinement of column positions.

All patches are fitted at once by a vectorised Levenberg-Marquardt iteration in
NumPy (one 5 x 5, or 7 x 7, normal-equation solve per patch per iteration), with
the round model

    I(x, y) = A exp(-((x - x0)^2 + (y - y0)^2) / (2 s^2)) + B

or the elliptical one, in the inverse-covariance form

    I(x, y) = A exp(-(a dx^2 + 2 b dx dy + c dy^2) / 2) + B,   dx = x - x0, dy = y - y0

on the pixels of a disc of radius ``radius_px`` around each start position.
Pixels outside the image are left out of the fit, so columns at the border are
refined from the pixels that exist.  Written here because scipy's
``least_squares`` fits one patch per call (and Atomap's refinement, which loops
over columns the same way, is the reference it is benchmarked against).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

N_PARAMS = 5  # round: A, x0, y0, s, B
N_PARAMS_ELLIPTICAL = 7  # A, x0, y0, a, b, c, B


@dataclass(frozen=True)
class GaussianFit:
    """Result of :func:`fit_gaussians`, one entry per start position.

    Attributes
    ----------
    x, y : ndarray
        Fitted centres in pixels (x = column index).
    sigma : ndarray
        Fitted Gaussian sigma in pixels.
    amplitude, background : ndarray
        Fitted A and B in image units.
    ok : ndarray of bool
        True where the fit converged to a plausible Gaussian: finite values,
        A > ``min_snr`` x RMS residual, sigma within [0.2, 5] x the start sigma and below the patch
        radius, centre within ``max_shift_px`` of the start.
    n_iter : int
        Iterations run.
    sigma_major, sigma_minor, theta : ndarray or None
        Elliptical fits only: the principal sigmas (pixels; ``sigma`` is their
        geometric mean) and the angle of the major axis from +x towards +y,
        radians.
    """

    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    amplitude: np.ndarray
    background: np.ndarray
    ok: np.ndarray
    n_iter: int
    sigma_major: np.ndarray | None = None
    sigma_minor: np.ndarray | None = None
    theta: np.ndarray | None = None


def _model_and_jacobian(p, dx, dy):
    amp, x0, y0, s, bg = (p[:, i, None] for i in range(N_PARAMS))
    ddx = dx - x0
    ddy = dy - y0
    r2 = ddx ** 2 + ddy ** 2
    g = np.exp(-0.5 * r2 / s ** 2)
    ag = amp * g
    model = ag + bg
    jac = np.stack([g, ag * ddx / s ** 2, ag * ddy / s ** 2, ag * r2 / s ** 3, np.ones_like(g)], axis=-1)
    return model, jac


def _elliptical_model_and_jacobian(p, dx, dy):
    amp, x0, y0, a, b, c, bg = (p[:, i, None] for i in range(N_PARAMS_ELLIPTICAL))
    ddx = dx - x0
    ddy = dy - y0
    g = np.exp(-0.5 * (a * ddx ** 2 + 2 * b * ddx * ddy + c * ddy ** 2))
    ag = amp * g
    jac = np.stack([g, ag * (a * ddx + b * ddy), ag * (b * ddx + c * ddy), -0.5 * ag * ddx ** 2,
                    -ag * ddx * ddy, -0.5 * ag * ddy ** 2, np.ones_like(g)], axis=-1)
    return ag + bg, jac


def _principal_sigmas(a, b, c):
    """Principal sigmas and major-axis angle of the inverse covariance [[a, b], [b, c]]."""
    half_trace = 0.5 * (a + c)
    root = np.sqrt(np.maximum(0.25 * (a - c) ** 2 + b ** 2, 0.0))
    lam_small, lam_large = half_trace - root, half_trace + root  # eigenvalues of the inverse covariance
    with np.errstate(divide="ignore", invalid="ignore"):
        major = np.where(lam_small > 0, 1.0 / np.sqrt(lam_small), np.nan)
        minor = np.where(lam_large > 0, 1.0 / np.sqrt(lam_large), np.nan)
    theta = 0.5 * np.arctan2(-2 * b, c - a)  # direction of the smallest curvature
    return major, minor, theta


def _levenberg_marquardt(p, data, weight, dx, dy, model_and_jacobian, n_params, max_iter, tol_px,
                         frozen=(), positive=(), moves=((1, 2),)):
    """Batched Levenberg-Marquardt: one damped normal-equation solve per patch per iteration.

    ``p`` (n, n_params) start values; ``data``, ``weight``, ``dx``, ``dy`` (n, n_pixels);
    ``frozen`` parameter indices kept fixed; ``positive`` indices kept > 0 (as absolute
    values); ``moves`` index pairs of the (x, y) centres whose largest step, pixels, is
    compared with ``tol_px`` to stop.  Returns (p, weighted residual sum of squares, iterations).
    """
    n = len(p)
    p = p.copy()
    lam = np.full(n, 1e-3)
    model, _ = model_and_jacobian(p, dx, dy)
    cost = np.sum(weight * (data - model) ** 2, axis=1)
    active = np.ones(n, bool)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        idx = np.nonzero(active)[0]
        if len(idx) == 0:
            break
        pa = p[idx]
        model, jac = model_and_jacobian(pa, dx[idx], dy[idx])
        for k in frozen:
            jac[..., k] = 0.0
        wj = jac * weight[idx, :, None]
        jtj = np.einsum("npi,npj->nij", wj, jac)
        jtr = np.einsum("npi,np->ni", wj, data[idx] - model)
        diag = np.einsum("nii->ni", jtj)
        damped = jtj + (lam[idx, None] * diag + 1e-12)[:, :, None] * np.eye(n_params)
        try:
            step = np.linalg.solve(damped, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(m, v, rcond=None)[0] for m, v in zip(damped, jtr)])
        trial = pa + step
        for k in positive:
            trial[:, k] = np.maximum(np.abs(trial[:, k]), 1e-6)
        new_cost = np.sum(weight[idx] * (data[idx] - model_and_jacobian(trial, dx[idx], dy[idx])[0]) ** 2, axis=1)
        better = np.isfinite(new_cost) & (new_cost <= cost[idx])
        acc = idx[better]
        p[acc] = trial[better]
        cost[acc] = new_cost[better]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-9)
        lam[idx[~better]] *= 4.0
        moved = np.max(np.abs(np.concatenate([step[:, list(m)] for m in moves], axis=1)), axis=1)
        done = (better & (moved < tol_px)) | (lam[idx] > 1e8)
        active[idx[done]] = False
    return p, cost, n_iter


def _patches(image, x_px, y_px, radius_px):
    """Pixels of a disc of ``radius_px`` around the nearest pixel of each (x, y).

    Returns the integer centres ``cx, cy`` (n,) and, per disc pixel, ``data``,
    ``weight`` (0 outside the image), ``dx, dy`` (offsets from the integer
    centre), each (n, n_pixels).
    """
    r = int(np.ceil(radius_px))
    offs = np.arange(-r, r + 1)
    oy, ox = np.meshgrid(offs, offs, indexing="ij")
    disc = (ox ** 2 + oy ** 2) <= radius_px ** 2
    ox, oy = ox[disc].astype(np.float64), oy[disc].astype(np.float64)
    h, w = image.shape
    cx = np.rint(x_px).astype(np.int64)
    cy = np.rint(y_px).astype(np.int64)
    ix = cx[:, None] + ox[None, :].astype(np.int64)
    iy = cy[:, None] + oy[None, :].astype(np.int64)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    data = image[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]
    dx = np.broadcast_to(ox, data.shape)
    dy = np.broadcast_to(oy, data.shape)
    return cx, cy, data, inside.astype(np.float64), dx, dy


def fit_gaussians(image: np.ndarray, x_px, y_px, radius_px: float, sigma_px: float,
                  max_shift_px: float | None = None, max_iter: int = 50, tol_px: float = 1e-4,
                  fix_sigma: bool = False, min_snr: float = 1.0, elliptical: bool = False) -> GaussianFit:
    """Fit a round 2-D Gaussian plus constant background around each start position.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Image, any units.
    x_px, y_px : array_like, shape (n,)
        Start positions in pixels (x = column index, pixel centres at integers).
    radius_px : float
        Radius of the disc of pixels fitted around each start position.
    sigma_px : float
        Start value of the Gaussian sigma, pixels.
    max_shift_px : float, optional
        Largest accepted move from the start position; default ``radius_px``.
    max_iter : int
        Iteration limit.
    tol_px : float
        Stop when no centre moves by more than this in an iteration.
    fix_sigma : bool
        Keep sigma at ``sigma_px`` and fit only A, x0, y0, B: steadier for
        low-count columns once the column width is known.
    min_snr : float
        A fit is accepted only if its amplitude exceeds ``min_snr`` times the
        RMS residual of the fit (rejects Gaussians fitted to noise).
    elliptical : bool
        Fit an elliptical Gaussian (three shape parameters) instead of a round
        one; ``fix_sigma`` does not apply.

    Returns
    -------
    GaussianFit
    """
    image = np.asarray(image, dtype=np.float64)
    x_px = np.asarray(x_px, dtype=np.float64).ravel()
    y_px = np.asarray(y_px, dtype=np.float64).ravel()
    n = len(x_px)
    max_shift_px = radius_px if max_shift_px is None else max_shift_px
    if n == 0:
        empty = np.zeros(0)
        return GaussianFit(empty, empty, empty, empty, empty, np.zeros(0, bool), 0)

    cx, cy, data, weight, dx, dy = _patches(image, x_px, y_px, radius_px)
    masked = np.where(weight > 0, data, np.nan)
    bg0 = np.nanpercentile(masked, 10, axis=1)
    peak = np.nanmax(masked, axis=1)
    amp0 = np.maximum(peak - bg0, 1e-12 * (np.abs(peak) + 1))
    if elliptical:
        inv = np.full(n, 1.0 / float(sigma_px) ** 2)
        p = np.column_stack([amp0, x_px - cx, y_px - cy, inv, np.zeros(n), inv, bg0])
        model_and_jacobian, n_params = _elliptical_model_and_jacobian, N_PARAMS_ELLIPTICAL
    else:
        p = np.column_stack([amp0, x_px - cx, y_px - cy, np.full(n, float(sigma_px)), bg0])
        model_and_jacobian, n_params = _model_and_jacobian, N_PARAMS
    start_xy = p[:, 1:3].copy()

    frozen = (3,) if fix_sigma and not elliptical else ()
    positive = () if elliptical else (3,)
    p, cost, n_iter = _levenberg_marquardt(p, data, weight, dx, dy, model_and_jacobian, n_params, max_iter,
                                           tol_px, frozen=frozen, positive=positive, moves=((1, 2),))

    amp, xo, yo, bg = p[:, 0], p[:, 1], p[:, 2], p[:, -1]
    shape_extra = {}
    if elliptical:
        major, minor, theta = _principal_sigmas(p[:, 3], p[:, 4], p[:, 5])
        s = np.sqrt(major * minor)
        s_lo, s_hi = minor, major
        shape_extra = {"sigma_major": major, "sigma_minor": minor, "theta": theta}
    else:
        s = s_lo = s_hi = p[:, 3]
    shift = np.hypot(xo - start_xy[:, 0], yo - start_xy[:, 1])
    rms = np.sqrt(cost / np.maximum(weight.sum(axis=1), 1.0))
    with np.errstate(invalid="ignore"):
        ok = (np.all(np.isfinite(p), axis=1) & np.isfinite(s) & (amp > min_snr * rms) & (s_lo > 0.2 * sigma_px)
              & (s_hi < 5.0 * sigma_px) & (s_hi < radius_px + 1) & (shift <= max_shift_px))
    return GaussianFit(x=cx + xo, y=cy + yo, sigma=s, amplitude=amp, background=bg, ok=ok, n_iter=n_iter,
                       **shape_extra)


def refine_peaks(image: np.ndarray, peaks: np.ndarray, radius_px: float, sigma_px: float) -> pd.DataFrame:
    """Gaussian-refine integer peaks (row, col) into a positions table; failed fits are dropped.

    A first pass fits the sigma of every column; columns whose free fit fails
    (typically low-count ones) are fitted again with sigma fixed at the median
    of the successful fits.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    peaks : ndarray of int, shape (n, 2)
        Start positions as (row, col) pixel indices.
    radius_px : float
        Radius of the fitted disc, pixels (the shift is bounded by half of it).
    sigma_px : float
        Start value of the Gaussian sigma, pixels.

    Returns
    -------
    DataFrame
        ``x, y`` (pixels, x = column index), ``score`` (fitted amplitude), ``sigma`` (pixels).
    """
    fit = fit_gaussians(image, peaks[:, 1], peaks[:, 0], radius_px=radius_px, sigma_px=sigma_px,
                        max_shift_px=0.5 * radius_px)
    cols = {"x": fit.x, "y": fit.y, "score": fit.amplitude, "sigma": fit.sigma}
    ok = fit.ok.copy()
    if ok.any() and not ok.all():
        redo = ~ok
        refit = fit_gaussians(image, peaks[redo, 1], peaks[redo, 0], radius_px=radius_px,
                              sigma_px=float(np.median(fit.sigma[ok])), max_shift_px=0.5 * radius_px, fix_sigma=True)
        for key, values in (("x", refit.x), ("y", refit.y), ("score", refit.amplitude), ("sigma", refit.sigma)):
            cols[key] = cols[key].copy()
            cols[key][redo] = values
        ok[redo] = refit.ok
    return pd.DataFrame({k: v[ok] for k, v in cols.items()})


N_PARAMS_PAIR = 8  # A1, x1, y1, A2, x2, y2, s, B
PAIR_MIN_SEPARATION_SIGMA = 1.5
"""The two Gaussians of an accepted pair lie at least this many of their sigmas apart."""


def _pair_model_and_jacobian(p, dx, dy):
    a1, x1, y1, a2, x2, y2, s, bg = (p[:, i, None] for i in range(N_PARAMS_PAIR))
    cols = []
    model = bg
    ds = 0.0
    for amp, x0, y0 in ((a1, x1, y1), (a2, x2, y2)):
        ddx, ddy = dx - x0, dy - y0
        r2 = ddx ** 2 + ddy ** 2
        g = np.exp(-0.5 * r2 / s ** 2)
        ag = amp * g
        model = model + ag
        cols += [g, ag * ddx / s ** 2, ag * ddy / s ** 2]
        ds = ds + ag * r2 / s ** 3
    return model, np.stack([*cols, ds, np.ones_like(model)], axis=-1)


def _pixel_values(image, xy):
    """Values of the pixels nearest to the points ``xy`` (n, 2; x, y pixels), clipped into the image."""
    ix = np.clip(np.rint(xy[:, 0]).astype(np.int64), 0, image.shape[1] - 1)
    iy = np.clip(np.rint(xy[:, 1]).astype(np.int64), 0, image.shape[0] - 1)
    return image[iy, ix]


def fit_gaussian_pairs(image: np.ndarray, xy1, xy2, sigma_px, max_iter: int = 50, tol_px: float = 1e-4
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit two overlapping round Gaussians of one sigma plus a constant background jointly, per pair.

    The disc of each pair is centred on the midpoint of its start positions with a
    radius of half their distance + 2.5 start sigmas.  Written here since no
    maintained library fits batches of overlapping Gaussians.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    xy1, xy2 : array_like, shape (n, 2)
        Start positions (x, y) of the two columns of each pair, pixels (x = column index).
    sigma_px : float or array_like, shape (n,)
        Start sigma of both Gaussians, pixels.

    Returns
    -------
    xy1, xy2 : ndarray, shape (n, 2)
        Fitted centres, pixels.
    amplitudes : ndarray, shape (n, 2)
    sigma : ndarray, shape (n,)
    ok : ndarray of bool, shape (n,)
        Finite values, both amplitudes > 0, sigma within [0.2, 5] x the start,
        centres at least :data:`PAIR_MIN_SEPARATION_SIGMA` sigmas apart and
        inside the disc.
    """
    image = np.asarray(image, dtype=np.float64)
    xy1 = np.asarray(xy1, dtype=np.float64).reshape(-1, 2)
    xy2 = np.asarray(xy2, dtype=np.float64).reshape(-1, 2)
    n = len(xy1)
    sigma0 = np.broadcast_to(np.asarray(sigma_px, dtype=np.float64), (n,))
    if n == 0:
        return xy1, xy2, np.zeros((0, 2)), np.zeros(0), np.zeros(0, bool)
    mid = 0.5 * (xy1 + xy2)
    radius = 0.5 * np.hypot(*(xy1 - xy2).T) + 2.5 * sigma0
    out1, out2, amps, sig, ok = np.empty((n, 2)), np.empty((n, 2)), np.empty((n, 2)), np.empty(n), np.zeros(n, bool)
    # one batch per disc size (rounded up to whole pixels)
    for r in np.unique(np.ceil(radius)):
        k = np.nonzero(np.ceil(radius) == r)[0]
        cx, cy, data, weight, dx, dy = _patches(image, mid[k, 0], mid[k, 1], float(r))
        bg0 = np.nanpercentile(np.where(weight > 0, data, np.nan), 10, axis=1)
        amp1, amp2 = (np.maximum(_pixel_values(image, xy[k]) - bg0, 1e-12) for xy in (xy1, xy2))
        p0 = np.column_stack([amp1, xy1[k, 0] - cx, xy1[k, 1] - cy, amp2, xy2[k, 0] - cx, xy2[k, 1] - cy,
                              sigma0[k], bg0])
        p, _, _ = _levenberg_marquardt(p0, data, weight, dx, dy, _pair_model_and_jacobian, N_PARAMS_PAIR, max_iter,
                                       tol_px, positive=(6,), moves=((1, 2), (4, 5)))
        a1, x1, y1, a2, x2, y2, s = (p[:, i] for i in range(7))
        with np.errstate(invalid="ignore"):
            ok[k] = (np.all(np.isfinite(p), axis=1) & (a1 > 0) & (a2 > 0) & (s > 0.2 * sigma0[k])
                     & (s < 5 * sigma0[k]) & (np.hypot(x1 - x2, y1 - y2) >= PAIR_MIN_SEPARATION_SIGMA * s)
                     & (np.hypot(x1, y1) < r) & (np.hypot(x2, y2) < r))
        out1[k] = np.column_stack([cx + x1, cy + y1])
        out2[k] = np.column_stack([cx + x2, cy + y2])
        amps[k] = np.column_stack([a1, a2])
        sig[k] = s
    return out1, out2, amps, sig, ok
