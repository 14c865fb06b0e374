"""FindFoci: peak finding by region growing, saddle analysis and peak merging.

A Python implementation of the FindFoci algorithm (Herbert, Carr & Hoffmann,
PLoS ONE 9, e114749, 2014; the GDSC ImageJ plugin), which the AtomID-net study
used to label its reference frames.  No maintained Python port exists, so it is
written here, in vectorised NumPy where it can be:

1. optional Gaussian blur;
2. a background level (absolute, image mean, mean + k std, or Otsu);
3. every pixel above the background points to its highest 8-neighbour
   ("steepest ascent"); following the pointers from any pixel ends at a local
   maximum, so each pixel joins the region of the maximum it climbs to.  This
   is the plugin's region growing from the brightest pixel down, in which each
   pixel joins its highest neighbour's region;
4. a peak expansion limit: a pixel stays in its region only if it is above the
   background, or above background + ``search_param`` x (peak - background);
5. the saddle between two touching regions is the highest of min(a, b) over
   all pairs of 8-neighbour pixels a, b that straddle them;
6. peaks are visited from the lowest up; a peak whose height above its highest
   saddle to a higher region is below the ``peak_method`` criterion, or whose
   number of pixels above that saddle is below ``min_size_px``, is merged into
   that higher region (or dropped, if it touches no higher region and sits too
   low above the background or is too small);
7. the centre of each surviving peak: its maximum pixel, the centre of mass of
   its pixels above its highest saddle, or a 2-D Gaussian fit.

Ties between equal pixel values are broken by pixel index, so a flat plateau
yields one maximum and the result is deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.filters import threshold_otsu

from atomloc.core.errors import AtomlocInputError

BACKGROUND_METHODS = ("absolute", "mean", "std_above_mean", "otsu")
SEARCH_METHODS = ("above_background", "fraction_of_peak")
PEAK_METHODS = ("absolute", "relative", "relative_above_background")
CENTRE_METHODS = ("max", "com", "gaussian")

# the 8 neighbour offsets (row, col) and the self offset
_OFFSETS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
# half of the 8-neighbourhood: each unordered neighbour pair is seen once
_HALF_OFFSETS = [(0, 1), (1, -1), (1, 0), (1, 1)]


def _choice(name, value, allowed):
    if value not in allowed:
        raise AtomlocInputError(f"findfoci: {name} must be one of {list(allowed)} (got {value!r})")
    return value


def background_level(image: np.ndarray, method: str = "absolute", param: float = 0.0) -> float:
    """Background level of ``image`` in image units.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    method : {"absolute", "mean", "std_above_mean", "otsu"}
        ``absolute``: ``param`` itself; ``mean``: the image mean;
        ``std_above_mean``: mean + ``param`` x standard deviation;
        ``otsu``: Otsu's threshold.
    param : float
        The level (``absolute``) or the number of standard deviations.
    """
    _choice("background_method", method, BACKGROUND_METHODS)
    if method == "absolute":
        return float(param)
    if method == "mean":
        return float(image.mean())
    if method == "std_above_mean":
        return float(image.mean() + float(param) * image.std())
    return float(threshold_otsu(image))


def _rank(image: np.ndarray) -> np.ndarray:
    """Unique rank of every pixel by value, ties broken by flat index."""
    flat = image.ravel()
    order = np.lexsort((np.arange(flat.size), flat))
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size)
    return rank.reshape(image.shape)


def _climb(image: np.ndarray) -> np.ndarray:
    """Flat index of the local maximum that each pixel reaches by steepest ascent."""
    h, w = image.shape
    rank = np.pad(_rank(image), 1, constant_values=-1)
    neighbour_rank = np.stack([rank[1 + dr:1 + dr + h, 1 + dc:1 + dc + w] for dr, dc in _OFFSETS])
    best = np.argmax(neighbour_rank, axis=0)  # the self offset (index 4) wins at maxima
    rows, cols = np.indices((h, w))
    dr = np.array([o[0] for o in _OFFSETS])[best]
    dc = np.array([o[1] for o in _OFFSETS])[best]
    parent = ((rows + dr) * w + (cols + dc)).ravel()
    while True:  # pointer jumping: log2(longest ascent path) rounds
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def _saddles(image: np.ndarray, labels: np.ndarray) -> pd.Series:
    """Highest saddle between each pair of touching regions, indexed by (a, b), a < b."""
    h, w = image.shape
    parts = []
    for dr, dc in _HALF_OFFSETS:
        r0, r1 = max(0, -dr), h - max(0, dr)
        c0, c1 = max(0, -dc), w - max(0, dc)
        la = labels[r0:r1, c0:c1]
        lb = labels[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
        touch = (la != lb) & (la > 0) & (lb > 0)
        if not touch.any():
            continue
        va = image[r0:r1, c0:c1][touch]
        vb = image[r0 + dr:r1 + dr, c0 + dc:c1 + dc][touch]
        a, b = la[touch], lb[touch]
        parts.append(pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b), "v": np.minimum(va, vb)}))
    if not parts:
        return pd.Series(dtype=np.float64)
    return pd.concat(parts).groupby(["a", "b"])["v"].max()


def segment_foci(image: np.ndarray, background: float, search_method: str = "above_background",
                 search_param: float = 0.0):
    """Region growing by steepest ascent, limited by the background / search criterion.

    Returns
    -------
    labels : ndarray of int, shape (H, W)
        0 = background, k = region of the k-th maximum (1-based).
    peak_index : ndarray of int, shape (K,)
        Flat pixel index of each region's maximum.
    """
    _choice("search_method", search_method, SEARCH_METHODS)
    flat = image.ravel()
    root = _climb(image)
    above = flat > background
    if search_method == "fraction_of_peak":
        if not 0.0 <= search_param < 1.0:
            raise AtomlocInputError(f"findfoci: search_param must be in [0, 1) (got {search_param})")
        above &= flat > background + search_param * (flat[root] - background)
    peaks = np.unique(root[above & (root == np.arange(flat.size))])
    lookup = np.zeros(flat.size, dtype=np.int64)
    lookup[peaks] = np.arange(1, len(peaks) + 1)
    labels = np.where(above, lookup[root], 0).reshape(image.shape)
    return labels, peaks


def _merge_peaks(image, labels, peak_index, background, peak_method, peak_param, min_size_px):
    """Merge or drop peaks, lowest first.

    Returns the final label image (absorbed regions relabelled to their absorber, dropped ones to 0),
    the survivor flags per label and each survivor's highest saddle (the background if none).
    """
    flat = image.ravel()
    n = len(peak_index)
    height = flat[peak_index]
    lab_flat = labels.ravel()
    order_px = np.argsort(lab_flat, kind="stable")
    bounds = np.searchsorted(lab_flat[order_px], np.arange(n + 2))
    values = {k: [flat[order_px[bounds[k]:bounds[k + 1]]]] for k in range(1, n + 1)}
    neighbours: dict[int, dict[int, float]] = {k: {} for k in range(1, n + 1)}
    for (a, b), v in _saddles(image, labels).items():
        neighbours[a][b] = v
        neighbours[b][a] = v
    owner = np.arange(n + 1)  # owner[k]: the region that absorbed k (k itself if alive)
    alive = np.ones(n + 1, bool)
    alive[0] = False
    saddle_of = np.full(n + 1, background, dtype=np.float64)

    for k in (np.argsort(height, kind="stable") + 1):
        higher = {j: s for j, s in neighbours[k].items() if height[j - 1] > height[k - 1]
                  or (height[j - 1] == height[k - 1] and j > k)}
        saddle = max(higher.values()) if higher else background
        target = max(higher, key=higher.get) if higher else 0
        rise = height[k - 1] - saddle
        if peak_method == "absolute":
            needed = peak_param
        elif peak_method == "relative":
            needed = peak_param * height[k - 1]
        else:
            needed = peak_param * (height[k - 1] - background)
        size = sum(int(np.count_nonzero(v > saddle)) for v in values[k])
        if rise >= needed and size >= min_size_px:
            saddle_of[k] = saddle
            continue
        alive[k] = False
        if target == 0:
            owner[k] = 0
            for j in neighbours[k]:
                neighbours[j].pop(k, None)
            continue
        owner[k] = target
        values[target].extend(values.pop(k))
        for j, s in neighbours.pop(k).items():
            neighbours[j].pop(k, None)
            if j != target:
                merged = max(s, neighbours[target].get(j, -np.inf))
                neighbours[target][j] = merged
                neighbours[j][target] = merged

    # resolve chains of absorption (k -> j -> i)
    while True:
        nxt = owner[owner]
        if np.array_equal(nxt, owner):
            break
        owner = nxt
    final = owner[labels]
    return final, alive, saddle_of


def find_foci(image: np.ndarray, blur_sigma_px: float = 0.0, background_method: str = "absolute",
              background_param: float = 0.0, search_method: str = "above_background", search_param: float = 0.0,
              peak_method: str = "relative_above_background", peak_param: float = 0.3, min_size_px: int = 10,
              centre_method: str = "max") -> pd.DataFrame:
    """Find intensity foci (atom columns) with the FindFoci algorithm.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Grey image; all levels are in its units (the ``findfoci`` method passes
        an image scaled so that its 0.5 / 99.5 percentiles are 0 / 1).
    blur_sigma_px : float
        Gaussian blur before the search, pixels (0 = none).
    background_method, background_param
        See :func:`background_level`.
    search_method : {"above_background", "fraction_of_peak"}
        Peak expansion limit: pixels join a region while above the background,
        or while above background + ``search_param`` x (peak - background).
    peak_method : {"absolute", "relative", "relative_above_background"}
        Merging criterion on the height of a peak above its highest saddle:
        at least ``peak_param`` (image units), ``peak_param`` x peak, or
        ``peak_param`` x (peak - background).
    min_size_px : int
        Minimum number of pixels of a peak above its highest saddle.
    centre_method : {"max", "com", "gaussian"}
        ``max``: the maximum pixel; ``com``: centre of mass of the region's
        pixels above its highest saddle, weighted by height above it;
        ``gaussian``: the maximum, to be refined by the caller (columns
        ``x, y`` hold the maximum; use :func:`atomloc.locate.refine.fit_gaussians`).

    Returns
    -------
    DataFrame
        ``x, y`` (pixels, x = column index), ``score`` (peak height above the
        background), ``saddle`` (highest saddle level) and ``size_px`` (pixels
        in the final region), one row per focus, brightest first.

    References
    ----------
    .. [1] A. D. Herbert, A. M. Carr, E. Hoffmann, "FindFoci: a focus detection algorithm with
       automated parameter training that closely matches human assignments, reduces human
       inconsistencies and increases speed of analysis", PLoS ONE 9, e114749 (2014).
    """
    image = np.asarray(image, dtype=np.float64)
    _choice("peak_method", peak_method, PEAK_METHODS)
    _choice("centre_method", centre_method, CENTRE_METHODS)
    if blur_sigma_px < 0:
        raise AtomlocInputError(f"findfoci: blur_sigma_px must be >= 0 (got {blur_sigma_px})")
    if min_size_px < 1:
        raise AtomlocInputError(f"findfoci: min_size_px must be >= 1 (got {min_size_px})")
    smooth = ndimage.gaussian_filter(image, blur_sigma_px) if blur_sigma_px > 0 else image
    background = background_level(smooth, background_method, background_param)
    labels, peak_index = segment_foci(smooth, background, search_method, search_param)
    final, alive, saddle_of = _merge_peaks(smooth, labels, peak_index, background, peak_method,
                                           float(peak_param), int(min_size_px))
    keep = np.nonzero(alive)[0]
    h, w = smooth.shape
    py, px = np.divmod(peak_index[keep - 1], w)
    sizes = np.bincount(final.ravel(), minlength=len(alive))[keep]
    x, y = px.astype(np.float64), py.astype(np.float64)
    if centre_method == "com" and len(keep):
        level = saddle_of[final]
        weight = np.where(final > 0, np.clip(smooth - level, 0.0, None), 0.0)
        wsum = ndimage.sum(weight, final, keep)
        rows, cols = np.indices(smooth.shape)
        good = wsum > 0
        x = np.where(good, ndimage.sum(weight * cols, final, keep) / np.where(good, wsum, 1), x)
        y = np.where(good, ndimage.sum(weight * rows, final, keep) / np.where(good, wsum, 1), y)
    out = pd.DataFrame({"x": x, "y": y, "score": smooth.ravel()[peak_index[keep - 1]] - background,
                        "saddle": saddle_of[keep], "size_px": sizes})
    return out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
