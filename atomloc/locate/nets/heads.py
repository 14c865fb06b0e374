"""Detection heads that turn a network's output map into column positions.

* :func:`nms_head` (AtomID-net): local maxima of the confidence map by
  max-pooling (the max-pool / max-unpool trick: a pixel is a proposal where it
  equals the maximum of its pooling window), a confidence lower bound, one
  square box per proposal whose side is the predicted spacing, greedy
  non-maximum suppression at an IoU threshold.  No maintained Python library
  has this head without torchvision, so it is written here.  Each kept centre is
  refined to sub-pixel precision by a parabola through the 3-point profiles of
  the map along x and y (our addition; the thesis reports pixel centres).
* :func:`otsu_centroid_head` (AtomSegNet): Otsu threshold of the map,
  connected components, intensity-weighted centroid of each component.

Coordinates: pixels, x = column index, centre of pixel (0, 0) at (0, 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.filters import threshold_otsu
from torch.nn import functional as F

from atomloc.core.errors import AtomlocInputError
from atomloc.core.geometry import parabolic_vertex


def local_maxima(conf: np.ndarray, window_px: int = 3, min_confidence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Proposals: pixels that equal the maximum of their ``window_px`` window and reach ``min_confidence``.

    Returns
    -------
    xy : ndarray, shape (k, 2)
        Integer pixel positions (x, y) as float.
    score : ndarray, shape (k,)
        Map value at each proposal.
    """
    if window_px < 1 or window_px % 2 == 0:
        raise AtomlocInputError(f"window_px must be an odd integer >= 1 (got {window_px})")
    t = torch.from_numpy(np.ascontiguousarray(conf, dtype=np.float32))[None, None]
    pooled = F.max_pool2d(t, window_px, stride=1, padding=window_px // 2)
    keep = (t == pooled) & (t >= min_confidence)
    iy, ix = torch.nonzero(keep[0, 0], as_tuple=True)
    iy, ix = iy.numpy(), ix.numpy()
    return np.column_stack([ix, iy]).astype(np.float64), conf[iy, ix].astype(np.float64)


def box_iou(dx: np.ndarray, dy: np.ndarray, side_px: float) -> np.ndarray:
    """IoU of two axis-aligned squares of side ``side_px`` whose centres differ by (dx, dy)."""
    inter = np.clip(side_px - np.abs(dx), 0, None) * np.clip(side_px - np.abs(dy), 0, None)
    return inter / (2 * side_px ** 2 - inter)


def nms_squares(xy: np.ndarray, score: np.ndarray, side_px: float, iou_threshold: float = 0.3) -> np.ndarray:
    """Greedy non-maximum suppression of equal squares centred on ``xy``.

    Boxes are visited by decreasing score (ties by input order); a box is kept
    unless it overlaps an already kept box with IoU > ``iou_threshold``.

    Returns
    -------
    ndarray of int
        Indices of the kept boxes, in the order they were kept.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    score = np.asarray(score, dtype=np.float64)
    if not side_px > 0:
        raise AtomlocInputError(f"nms: box side must be > 0 (got {side_px})")
    if not 0 <= iou_threshold <= 1:
        raise AtomlocInputError(f"nms: iou_threshold must be in [0, 1] (got {iou_threshold})")
    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-score, kind="stable")
    # Only boxes closer than side * sqrt(2) along both axes can overlap.
    pairs = cKDTree(xy).query_pairs(side_px * np.sqrt(2), output_type="ndarray")
    iou = box_iou(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T, side_px) if len(pairs) else np.zeros(0)
    pairs = pairs[iou > iou_threshold]
    neighbours: list[list[int]] = [[] for _ in range(len(xy))]
    for a, b in pairs:
        neighbours[a].append(b)
        neighbours[b].append(a)
    suppressed = np.zeros(len(xy), dtype=bool)
    kept = []
    for i in order:
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed[neighbours[i]] = True
    return np.asarray(kept, dtype=np.int64)


def subpixel_parabola(conf: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Refine integer maxima by a parabola through the 3 values along x and along y (shift clipped to 0.5 px).

    Points on the image border stay whole pixels along the axis that has no neighbour.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy) == 0:
        return xy
    h, w = conf.shape
    ix, iy = xy[:, 0].astype(np.int64), xy[:, 1].astype(np.int64)
    out = xy.copy()
    for axis, (i, n) in enumerate(((ix, w), (iy, h))):
        lo, hi = np.clip(i - 1, 0, n - 1), np.clip(i + 1, 0, n - 1)
        if axis == 0:
            fm, f0, fp = conf[iy, lo], conf[iy, ix], conf[iy, hi]
        else:
            fm, f0, fp = conf[lo, ix], conf[iy, ix], conf[hi, ix]
        interior = (i > 0) & (i < n - 1)  # a point on the border has no parabola along this axis
        shift = np.where(interior, parabolic_vertex(fm, f0, fp), 0.0)
        out[:, axis] += np.clip(np.nan_to_num(shift), -0.5, 0.5)
    return out


def nms_head(conf: np.ndarray, spacing_px: float, min_confidence: float = 0.3, window_px: int = 3,
             iou_threshold: float = 0.3, subpixel: bool = True) -> pd.DataFrame:
    """AtomID-net's detection head on a confidence map.

    Parameters
    ----------
    conf : ndarray, shape (H, W)
        Confidence map (peak 1 at a column).
    spacing_px : float
        Side of each proposal's box: the predicted mean nearest-neighbour spacing, pixels.
    min_confidence : float
        Lower bound on the confidence of a proposal ("filter lower bound").
    window_px : int
        Max-pooling window (odd).
    iou_threshold : float
        Boxes overlapping a kept box by more than this IoU are suppressed.
    subpixel : bool
        Refine the kept centres by :func:`subpixel_parabola`.

    Returns
    -------
    DataFrame with ``x, y, score``
    """
    xy, score = local_maxima(conf, window_px, min_confidence)
    kept = nms_squares(xy, score, spacing_px, iou_threshold)
    xy, score = xy[kept], score[kept]
    if subpixel:
        xy = subpixel_parabola(conf, xy)
    order = np.lexsort((xy[:, 0], xy[:, 1]))
    return pd.DataFrame({"x": xy[order, 0], "y": xy[order, 1], "score": score[order]})


SPLIT_MIN_DEPTH = 0.05
""":func:`split_at_maxima`: how far (map units) the map must dip between two maxima of one component."""


def split_at_maxima(seg: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Divide each component that holds several maxima of the map, one region per maximum.

    Two columns closer than the map's blobs are wide (a dumbbell seen at the
    network's inference scale) share one thresholded component, whose centroid
    is neither column.  The markers are the map's regional maxima of depth
    :data:`SPLIT_MIN_DEPTH` above ``threshold`` (:func:`skimage.morphology.h_maxima`:
    a plateau, e.g. of a saturated sigmoid, is one maximum, and a bump that
    dips less than that to its neighbour is none); a component holding two or
    more is divided between them by scikit-image's marker watershed of the map.

    Returns
    -------
    labels : ndarray of int
        Relabelled 1..n (components with fewer than two maxima kept whole).
    n : int
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    peaks = h_maxima(np.asarray(seg, dtype=np.float64), SPLIT_MIN_DEPTH).astype(bool) & (seg > threshold)
    markers, n_markers = ndimage.label(peaks, structure=np.ones((3, 3)))
    if n_markers < 2:
        return labels, int(labels.max())
    held = np.zeros(labels.max() + 1, dtype=int)
    component_of = ndimage.maximum(labels, markers, np.arange(1, n_markers + 1)).astype(int)
    np.add.at(held, component_of, 1)
    held[0] = 0
    merged = held >= 2
    if not merged.any():
        return labels, int(labels.max())
    region = merged[labels]
    split = watershed(-seg, np.where(region, markers, 0), mask=region)
    # the split regions take new labels after the components that stay whole
    whole, n_whole = ndimage.label((labels > 0) & ~region)
    _, inverse = np.unique(split[region], return_inverse=True)
    out = whole.copy()
    out[region] = n_whole + 1 + inverse.ravel()
    return out, int(out.max())


def otsu_centroid_head(seg: np.ndarray, min_area_px: int = 2, threshold: float | None = None,
                       split: bool = True) -> pd.DataFrame:
    """AtomSegNet's localisation: Otsu threshold, connected components, weighted centroids.

    Components smaller than ``min_area_px`` pixels are dropped.  ``threshold``
    (in map units, 0-1) replaces Otsu's when given (a calibrated operating point).
    ``split``: a component holding several maxima of the map is divided between
    them first (:func:`split_at_maxima`; AtomSegNet's own head does not).

    Returns
    -------
    DataFrame with ``x, y, score`` (score = the component's maximum)
    """
    seg = np.asarray(seg, dtype=np.float64)
    if np.ptp(seg) == 0:
        return pd.DataFrame({"x": [], "y": [], "score": []})
    t = threshold_otsu(seg) if threshold is None else threshold
    labels, n = ndimage.label(seg > t)
    if n == 0:
        return pd.DataFrame({"x": [], "y": [], "score": []})
    if split:
        labels, n = split_at_maxima(seg, labels, t)
    index = np.arange(1, n + 1)
    area = ndimage.sum_labels(np.ones_like(seg), labels, index)
    com = np.array(ndimage.center_of_mass(seg, labels, index)).reshape(-1, 2)
    peak = ndimage.maximum(seg, labels, index)
    keep = area >= min_area_px
    return pd.DataFrame({"x": com[keep, 1], "y": com[keep, 0], "score": np.asarray(peak)[keep]})
