"""Per-column intensities and the sublattices they form.

Every locate method's output gets, from :func:`annotate_columns`,

- ``intensity``: the background-subtracted intensity summed over a disc of
  ``0.35 x spacing`` around each column (:func:`column_intensities`), image
  units x pixels; and
- ``sublattice``: 0 for the brightest group of columns, 1 for the next, ...,
  from a Gaussian mixture of those intensities where their histogram is
  multi-modal (:func:`sublattice_labels`); all 0 where it is not.

:func:`keep_columns` then keeps ``"heavy"`` (sublattice 0) or ``"all"``.
Coordinates: pixels, x = column index, pixel centres at integers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atomloc.core.errors import AtomlocInputError
from atomloc.locate import tiles
from atomloc.locate.noise import spacing_background, spacing_background_reach_px

INTENSITY_RADIUS_FRAC = 0.35
"""Radius of the disc summed by :func:`column_intensities`, as a fraction of the column spacing."""

MAX_FIT_COLUMNS = 1500
"""At most this many intensities (evenly spaced quantiles of all of them) are fitted by the mixture."""

COLUMNS = ("all", "heavy")
"""What :func:`keep_columns` can keep."""


def column_intensities(image: np.ndarray, x_px, y_px, *, spacing_px: float,
                       radius_px: float | None = None) -> np.ndarray:
    """Background-subtracted intensity of each column, summed over a disc.

    The background is the local level between columns
    (:func:`atomloc.locate.noise.spacing_background`: the minimum of the image
    smoothed by spacing / 6 over 2 x spacing, blurred over one spacing), as in
    the peak detection.  For a column at the border the sum over the pixels
    inside the image is scaled up by the fraction of the disc they cover.
    An image with a side longer than :data:`atomloc.locate.tiles.TILE_PX` is
    done a tile at a time (each tile's background over a window past the
    filters' reach: the same numbers, bounded memory).

    Parameters
    ----------
    image : ndarray, shape (H, W)
    x_px, y_px : array_like, shape (n,)
        Column centres, pixels (x = column index).
    spacing_px : float
        Column spacing, pixels (sets the background scale).
    radius_px : float, optional
        Disc radius, pixels; default :data:`INTENSITY_RADIUS_FRAC` x spacing, at least 1.

    Returns
    -------
    ndarray, shape (n,)
        Summed intensity above the background, image units x pixels.
    """
    image = np.asarray(image, dtype=np.float64)
    x = np.asarray(x_px, dtype=np.float64).ravel()
    y = np.asarray(y_px, dtype=np.float64).ravel()
    radius = max(1.0, INTENSITY_RADIUS_FRAC * spacing_px) if radius_px is None else float(radius_px)
    if len(x) == 0:
        return np.zeros(0)
    if not tiles.needs_tiles(image.shape):
        return _disc_sums(image - spacing_background(image, spacing_px), x, y, radius, (0, 0), image.shape)
    # A large image: the background of one tile at a time, over a window reaching past the filters
    # (the same numbers as on the whole image) for the columns in the tile's core.
    out = np.zeros(len(x))
    margin = spacing_background_reach_px(spacing_px) + int(np.ceil(radius)) + 2
    for t in tiles.tiles(image.shape, margin):
        sel = np.nonzero(tiles.in_core(x, y, t, image.shape))[0]
        if len(sel):
            window = image[t.window]
            out[sel] = _disc_sums(window - spacing_background(window, spacing_px), x[sel], y[sel], radius,
                                  (t.wr0, t.wc0), image.shape)
    return out


def _disc_sums(above: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float, origin: tuple[int, int],
               shape: tuple[int, int]) -> np.ndarray:
    """Sums of ``above`` (a window of the image whose pixel (0, 0) is image pixel ``origin`` = (row, col))
    over discs of ``radius`` around (x, y) (image pixels), scaled up by the share of each disc inside the
    image of ``shape`` (H, W)."""
    reach = int(np.ceil(radius))
    dy, dx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    rows = np.rint(y)[:, None].astype(np.int64) + dy.ravel()[None, :]
    cols = np.rint(x)[:, None].astype(np.int64) + dx.ravel()[None, :]
    h, w = shape
    inside = ((np.hypot(cols - x[:, None], rows - y[:, None]) <= radius)
              & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w))
    r0, c0 = origin
    th, tw = above.shape
    values = np.where(inside, above[np.clip(rows - r0, 0, th - 1), np.clip(cols - c0, 0, tw - 1)], 0.0)
    in_disc = np.hypot(cols - x[:, None], rows - y[:, None]) <= radius
    covered = inside.sum(axis=1) / np.maximum(in_disc.sum(axis=1), 1)
    return values.sum(axis=1) / np.maximum(covered, 1e-12)


def sublattice_labels(intensity, *, max_sublattices: int = 3, max_dip: float = 0.5,
                      min_fraction: float = 0.05, fit_mask=None, seed: int = 0) -> np.ndarray:
    """Split columns into sublattices by intensity: 0 = brightest.

    Gaussian mixtures of 1 to ``max_sublattices`` components are fitted to the
    intensities (``sklearn.mixture.GaussianMixture``) and the one with the lowest
    Bayesian information criterion is kept, provided the fitted density dips
    between every pair of neighbouring components to at most ``max_dip`` times
    its lower value at their two means (otherwise a broad unimodal histogram,
    e.g. a thickness gradient, would be cut in pieces) and each component holds at least ``min_fraction`` of the
    columns (a few outliers, e.g. contamination, are no sublattice).  Components
    are numbered by decreasing mean intensity.

    Parameters
    ----------
    intensity : array_like, shape (n,)
        Column intensities (:func:`column_intensities`).
    max_sublattices : int
        Most components tried.
    max_dip : float
        Largest accepted ratio of the mixture density's minimum between two
        neighbouring component means to the lower of its values at those means.
    min_fraction : float
        Smallest accepted share of the columns in one component.
    fit_mask : array_like of bool, shape (n,), optional
        Columns the mixture is fitted to (e.g. those whose disc lies inside the
        image; at most :data:`MAX_FIT_COLUMNS` of their sorted intensities,
        evenly spaced); every column is then labelled.
    seed : int
        Seed of the mixture fits' initialisation.

    Returns
    -------
    ndarray of int, shape (n,)
        Sublattice of each column; all 0 for a unimodal histogram or fewer than 20 columns.

    References
    ----------
    .. [1] G. Schwarz, "Estimating the dimension of a model", Ann. Stat. 6,
       461-464 (1978).
    """
    from sklearn.mixture import GaussianMixture

    values = np.asarray(intensity, dtype=np.float64).reshape(-1, 1)
    labels = np.zeros(len(values), dtype=np.int64)
    fitted = values if fit_mask is None else values[np.asarray(fit_mask, dtype=bool)]
    if len(fitted) < 20 or max_sublattices < 2 or np.ptp(fitted) == 0:
        return labels
    if len(fitted) > MAX_FIT_COLUMNS:  # an evenly spaced share of the sorted intensities keeps the histogram
        fitted = np.sort(fitted, axis=0)[np.linspace(0, len(fitted) - 1, MAX_FIT_COLUMNS).astype(np.int64)]
    best_bic, best = np.inf, None
    for k in range(1, int(max_sublattices) + 1):
        gm = GaussianMixture(k, random_state=seed).fit(fitted)
        if k > 1 and (gm.weights_.min() < min_fraction or not _has_dips(gm, max_dip)):
            continue
        bic = gm.bic(fitted)
        if bic < best_bic:
            best_bic, best = bic, gm
    if best is None or best.n_components == 1:
        return labels
    rank = np.argsort(np.argsort(-best.means_.ravel()))
    return rank[best.predict(values)].astype(np.int64)


def _has_dips(gm, max_dip: float) -> bool:
    """Whether the 1-D mixture's density dips below ``max_dip`` x its value at each pair of neighbouring means."""
    means = np.sort(gm.means_.ravel())
    for lo, hi in zip(means[:-1], means[1:]):
        grid = np.linspace(lo, hi, 101).reshape(-1, 1)
        density = np.exp(gm.score_samples(grid))
        if density.min() > max_dip * min(density[0], density[-1]):
            return False
    return True


def annotate_columns(image: np.ndarray, positions: pd.DataFrame, *, spacing_px: float) -> pd.DataFrame:
    """Add ``intensity`` (:func:`column_intensities`) and ``sublattice`` (:func:`sublattice_labels`) to a table.

    The mixture is fitted to the columns whose disc lies inside the image (the
    border ones' intensities are extrapolated) and labels every column.
    """
    out = positions.copy()
    x, y = out["x"].to_numpy(), out["y"].to_numpy()
    out["intensity"] = column_intensities(image, x, y, spacing_px=spacing_px)
    margin = max(1.0, INTENSITY_RADIUS_FRAC * spacing_px)
    h, w = np.shape(image)
    interior = (x >= margin) & (x <= w - 1 - margin) & (y >= margin) & (y <= h - 1 - margin)
    out["sublattice"] = sublattice_labels(out["intensity"].to_numpy(), fit_mask=interior)
    return out


def check_columns(columns, where: str = "image") -> str:
    """Return ``columns`` if it is one of :data:`COLUMNS`, else raise a one-line error naming ``where``."""
    if not isinstance(columns, str) or columns not in COLUMNS:
        raise AtomlocInputError(f"{where}: columns={columns!r}: expected one of {', '.join(map(repr, COLUMNS))}")
    return columns


def keep_columns(positions: pd.DataFrame, columns: str = "all", name: str = "image") -> pd.DataFrame:
    """Keep ``"all"`` columns or only the ``"heavy"`` ones (sublattice 0, the brightest)."""
    if check_columns(columns, name) == "all":
        return positions
    return positions[positions["sublattice"] == 0].reset_index(drop=True)
