"""Matching of predicted to reference positions, and detection metrics.

Matching is one-to-one and optimal (Hungarian, ``scipy.optimize.linear_sum_assignment``,
on each connected group of candidate pairs) among pairs closer than
``match_radius_frac`` x the mean nearest-neighbour spacing of the reference.

Border handling: all points are matched, then only the reference points (for
true positives and misses) and the unmatched predictions (for false positives)
farther than ``border_px`` from the image edge are counted.  A column just inside
the margin whose prediction lies just outside it is therefore neither a miss nor
a false positive.

Definitions (standard, not the swapped ones of the AtomID thesis):
precision = TP / predictions, recall = TP / references, F1 = 2PR / (P + R),
Jaccard = TP / (TP + FP + FN), Chamfer distance = mean over predictions of the
distance to the nearest reference + mean over references of the distance to the
nearest prediction (pixels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from atomloc.core.geometry import nearest_neighbour_spacing


def match_points(pred: np.ndarray, ref: np.ndarray, radius_px: float):
    """Optimal one-to-one matching of ``pred`` to ``ref`` within ``radius_px``.

    Parameters
    ----------
    pred, ref : ndarray, shape (n, 2) and (m, 2)
        Positions (x, y) in pixels.
    radius_px : float
        Largest distance of a matched pair.

    Returns
    -------
    pairs : ndarray of int, shape (k, 2)
        Index pairs (i_pred, j_ref), minimising the summed distance.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1, 2)
    if len(pred) == 0 or len(ref) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # Candidate pairs within the radius (query_ball_point keeps zero distances,
    # which a sparse distance matrix would drop).
    hits = cKDTree(ref).query_ball_point(pred, radius_px)
    lens = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
    if lens.sum() == 0:
        return np.zeros((0, 2), dtype=np.int64)
    cand_row = np.repeat(np.arange(len(pred)), lens)
    cand_col = np.concatenate([np.asarray(h, dtype=np.int64) for h in hits])
    cand_d = np.hypot(*(pred[cand_row] - ref[cand_col]).T)
    n, m = len(pred), len(ref)
    # Split the bipartite candidate graph into connected groups; solve each exactly.
    graph = coo_matrix((np.ones(len(cand_row)), (cand_row, cand_col + n)), shape=(n + m, n + m))
    _, comp = connected_components(graph, directed=False)
    pair_comp = comp[cand_row]
    order = np.argsort(pair_comp, kind="stable")
    rows, cols, dist, pc = cand_row[order], cand_col[order], cand_d[order], pair_comp[order]
    bounds = np.flatnonzero(np.diff(pc)) + 1
    out = []
    big = 1e6 * (radius_px + 1)
    for r, c, d in zip(np.split(rows, bounds), np.split(cols, bounds), np.split(dist, bounds)):
        ur, ri = np.unique(r, return_inverse=True)
        uc, ci = np.unique(c, return_inverse=True)
        cost = np.full((len(ur), len(uc)), big)
        cost[ri, ci] = d
        a, b = linear_sum_assignment(cost)
        keep = cost[a, b] < big
        out.append(np.column_stack([ur[a[keep]], uc[b[keep]]]))
    return np.concatenate(out).astype(np.int64)


def _inside(xy: np.ndarray, shape, border_px: float) -> np.ndarray:
    h, w = shape
    return ((xy[:, 0] >= border_px - 0.5) & (xy[:, 0] <= w - 0.5 - border_px)
            & (xy[:, 1] >= border_px - 0.5) & (xy[:, 1] <= h - 0.5 - border_px))


@dataclass(frozen=True)
class DetectionScore:
    """Metrics of one image (see module docstring for definitions)."""

    n_pred: int
    n_ref: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    jaccard: float
    chamfer_px: float
    rmse_px: float
    rmse_pm: float
    match_radius_px: float
    border_px: float

    def as_dict(self) -> dict:
        return asdict(self)


def score_detections(pred: np.ndarray, ref: np.ndarray, shape, match_radius_frac: float = 0.3,
                     border_frac: float = 0.5, pixel_size_pm: float | None = None,
                     spacing_px: float | None = None, ignore: np.ndarray | None = None,
                     return_matches: bool = False):
    """Score predicted positions against reference positions in one image.

    Parameters
    ----------
    pred, ref : ndarray, shape (n, 2), (m, 2)
        (x, y) in pixels.  ``ref`` may include points outside the image.
    shape : (int, int)
        Image shape (H, W).
    match_radius_frac : float
        Matching radius as a fraction of the reference nearest-neighbour spacing.
    border_frac : float
        Border margin as a fraction of that spacing.
    pixel_size_pm : float, optional
        Converts RMSE to pm (NaN without it).
    spacing_px : float, optional
        Reference spacing; by default the mean nearest-neighbour distance of ``ref``
        and ``ignore`` together.
    ignore : ndarray, shape (k, 2), optional
        Columns that are neither to be found nor false alarms ("don't care",
        e.g. a sublattice too faint to score): they take part in the matching,
        and a prediction matched to one counts neither as a hit nor as a false
        positive.
    return_matches : bool
        Also return the counted matches.

    Returns
    -------
    DetectionScore
        (alone unless ``return_matches``)
    matches : ndarray of int, shape (tp, 2)
        Only with ``return_matches``: the counted pairs (index into ``pred``,
        index into ``ref``).
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1, 2)
    n_scored = len(ref)
    if ignore is not None and len(ignore):
        ref = np.concatenate([ref, np.asarray(ignore, dtype=np.float64).reshape(-1, 2)])
    spacing = nearest_neighbour_spacing(ref) if spacing_px is None else float(spacing_px)
    radius = match_radius_frac * spacing
    border = border_frac * spacing
    pairs = match_points(pred, ref, radius)
    cared = pairs[:, 1] < n_scored
    ignored_pred = pairs[~cared, 0]
    pairs = pairs[cared]
    ref = ref[:n_scored]
    ref_in = _inside(ref, shape, border)
    pred_in = _inside(pred, shape, border)
    pred_in[ignored_pred] = False
    matched_pred = np.zeros(len(pred), bool)
    matched_ref = np.zeros(len(ref), bool)
    matched_pred[pairs[:, 0]] = True
    matched_ref[pairs[:, 1]] = True
    counted = pairs[ref_in[pairs[:, 1]]]
    tp = len(counted)
    fn = int(np.sum(ref_in & ~matched_ref))
    fp = int(np.sum(pred_in & ~matched_pred))
    n_pred = int(pred_in.sum())
    n_ref = int(ref_in.sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    jaccard = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    if tp:
        d = pred[counted[:, 0]] - ref[counted[:, 1]]
        rmse_px = float(np.sqrt(np.mean(np.sum(d ** 2, axis=1))))
    else:
        rmse_px = float("nan")
    chamfer = chamfer_distance(pred[pred_in], ref, ref[ref_in], pred)
    rmse_pm = rmse_px * pixel_size_pm if pixel_size_pm else float("nan")
    score = DetectionScore(n_pred, n_ref, tp, fp, fn, precision, recall, f1, jaccard, chamfer, rmse_px, rmse_pm,
                           radius, border)
    return (score, counted) if return_matches else score


def chamfer_distance(pred: np.ndarray, ref_all: np.ndarray, ref: np.ndarray | None = None,
                     pred_all: np.ndarray | None = None) -> float:
    """Chamfer distance in pixels: mean_p min_t |p - t| + mean_t min_p |p - t|.

    ``pred`` and ``ref`` are the counted points; their nearest partners are
    searched among ``ref_all`` and ``pred_all`` (default: the counted sets), so
    points beyond a border margin still serve as partners.  NaN if either side
    is empty.
    """
    ref = ref_all if ref is None else ref
    pred_all = pred if pred_all is None else pred_all
    if len(pred) == 0 or len(ref) == 0 or len(ref_all) == 0 or len(pred_all) == 0:
        return float("nan")
    d_pt, _ = cKDTree(ref_all).query(pred)
    d_tp, _ = cKDTree(pred_all).query(ref)
    return float(np.mean(d_pt) + np.mean(d_tp))


def spacing_sanity(pred: np.ndarray, spacing_px: float, tolerance: float = 0.3) -> float:
    """Label-free sanity figure: the fraction of detections whose nearest other detection lies
    within ``tolerance`` (relative) of the column spacing.

    Near 1 for a clean detection of one lattice; noise detections (too close),
    missed columns (too far) and a wrong spacing pull it down.  For lattices
    with a basis whose columns sit closer than the spacing it stays below 1 even
    for a perfect detection, so compare methods on one image, not images.

    Parameters
    ----------
    pred : ndarray, shape (n, 2)
        Detected (x, y), pixels.
    spacing_px : float
        Column spacing, pixels.
    tolerance : float
        Accepted relative deviation of the nearest-neighbour distance.

    Returns
    -------
    float
        The fraction in [0, 1]; NaN for fewer than two detections.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    if len(pred) < 2:
        return float("nan")
    d, _ = cKDTree(pred).query(pred, k=2)
    return float(np.mean(np.abs(d[:, 1] / float(spacing_px) - 1.0) <= tolerance))
