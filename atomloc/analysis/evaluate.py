"""Scoring of a method's positions on every frame of a series, against the truth
the simulator stored and against the reference labels."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from atomloc.analysis.crlb import column_crlb_px, image_crlb_px
from atomloc.analysis.metrics import score_detections
from atomloc.analysis.strain import gpa_strain, lattice_parameter_precision, sample_map, strain_from_positions
from atomloc.core.errors import AtomlocInputError
from atomloc.core.geometry import nearest_neighbour_spacing
from atomloc.io.series import Series
from atomloc.series.label import select_transfer


def frame_crlb(series: Series, labels: pd.DataFrame, truth_kinds: Sequence[str] | None = None,
               transfer: str = "rigid") -> pd.DataFrame:
    """Cramér–Rao bound of every frame against each of its references (truth, labels).

    The bound depends on the frame and the reference positions only, so the
    workflow computes it once per dataset and every method's scores reuse it.

    Parameters
    ----------
    series : Series
    labels : DataFrame or None
        Reference labels with ``frame, x, y`` (and ``transfer``) columns (None: truth only).
    truth_kinds : sequence of str, optional
        Column kinds of the truth to use (default: all).
    transfer : str
        Which transfer of the labels (``rigid`` / ``nonrigid``).

    Returns
    -------
    DataFrame
        ``frame, reference, crlb_pm`` (:func:`atomloc.analysis.crlb.image_crlb_px` in
        pm; NaN unless the frames are in counts).
    """
    labels = None if labels is None else select_transfer(labels, transfer)
    in_counts = series.attrs.get("intensity_unit") == "counts"
    rows = []
    for frame in range(series.n_frames):
        for ref_name, (ref, _) in _references(series, labels, frame, truth_kinds).items():
            crlb = image_crlb_px(series.frames[frame], ref) * series.pixel_size_pm if in_counts else float("nan")
            rows.append({"frame": frame, "reference": ref_name, "crlb_pm": crlb})
    return pd.DataFrame(rows, columns=["frame", "reference", "crlb_pm"])


def _references(series: Series, labels: pd.DataFrame, frame: int, truth_kinds) -> dict:
    """Reference name -> (scored positions, "don't care" positions) of one frame.

    The truth's columns of kinds outside ``truth_kinds`` are "don't care": a
    detection on one is neither a hit nor a false alarm.
    """
    refs = {} if labels is None else {"labels": (labels.loc[labels["frame"] == frame, ["x", "y"]].to_numpy(), None)}
    if series.truth is not None:
        scored = series.truth.positions(frame, truth_kinds)
        ignore = None
        if truth_kinds:
            ignore = series.truth.positions(frame)[~np.isin(series.truth.kind, list(truth_kinds))]
        refs = {"truth": (scored, ignore), **refs}
    return refs


def frame_column_crlb(series: Series, truth_kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Cramér–Rao bound of every scored true column of every frame, from its own fit.

    Parameters
    ----------
    series : Series
        A simulated series (truth) in counts.
    truth_kinds : sequence of str, optional
        Column kinds scored (default: all), in the order of
        ``series.truth.positions(frame, truth_kinds)``.

    Returns
    -------
    DataFrame
        ``frame, column, crlb_px`` (:func:`atomloc.analysis.crlb.column_crlb_px`;
        ``column`` indexes the frame's scored truth columns); empty without
        truth or counts.
    """
    columns = ["frame", "column", "crlb_px"]
    if series.truth is None or series.attrs.get("intensity_unit") != "counts":
        return pd.DataFrame(columns=columns)
    parts = []
    for frame in range(series.n_frames):
        ref = series.truth.positions(frame, truth_kinds)
        spacing = nearest_neighbour_spacing(series.truth.positions(frame)) if len(ref) > 1 else None
        bound = column_crlb_px(series.frames[frame], ref, spacing)
        parts.append(pd.DataFrame({"frame": frame, "column": np.arange(len(ref)), "crlb_px": bound}))
    return pd.concat(parts, ignore_index=True)[columns]


def evaluate_series(series: Series, labels: pd.DataFrame, positions: pd.DataFrame,
                    seconds: Sequence[float] | None = None, match_radius_frac: float = 0.3,
                    border_frac: float = 0.5, truth_kinds: Sequence[str] | None = None, transfer: str = "rigid",
                    crlb: pd.DataFrame | None = None, column_crlb: pd.DataFrame | None = None) -> pd.DataFrame:
    """Score per-frame positions against the truth (where stored) and the reference labels.

    Parameters
    ----------
    series : Series
        The frames, their attributes and (simulated series) the truth.
    labels : DataFrame or None
        Reference labels with ``frame, x, y`` (and ``transfer``) columns
        (:func:`atomloc.series.label.transfer_labels`); None scores against the
        truth only.
    positions : DataFrame
        Positions of every frame, with a ``frame`` column
        (:func:`atomloc.locate.registry.locate_series`).
    seconds : sequence of float, optional
        Time spent in ``locate`` per frame, s.
    match_radius_frac, border_frac : float
        See :func:`atomloc.analysis.metrics.score_detections`.
    truth_kinds : sequence of str, optional
        Column kinds scored in the truth (default: all); the other kinds are
        "don't care" (see :func:`atomloc.analysis.metrics.score_detections`).
    transfer : str
        Which transfer of the labels to score against (``rigid`` / ``nonrigid``).
    crlb : DataFrame, optional
        :func:`frame_crlb` of this series (computed here when not given).
    column_crlb : DataFrame, optional
        :func:`frame_column_crlb` of this series; gives ``crlb_matched_pm``
        (NaN without it).

    Returns
    -------
    DataFrame
        One row per (frame, reference) with the fields of
        :class:`atomloc.analysis.metrics.DetectionScore`, ``dose_e_per_A2``, ``time_ms``,
        ``fov_nm`` (frame width), ``crlb_pm`` (:func:`atomloc.analysis.crlb.image_crlb_px`
        at the reference positions; NaN unless the frames are in counts),
        ``rmse_over_crlb``, ``crlb_matched_pm`` (truth rows: the RMS of the
        per-column bounds over the columns this method matched, so that
        ``rmse_pm / crlb_matched_pm`` compares like with like), ``defocus_nm`` and ``in_focus`` (``|defocus|`` within
        half the probe's depth of field, :meth:`atomloc.io.series.Series.in_focus`;
        both only for series that store the defocus and the probe), and the
        lattice-parameter precision
        ``lattice_a_std_pm`` / ``lattice_b_std_pm`` of the predictions
        (:func:`atomloc.analysis.strain.lattice_parameter_precision` against the stored
        unstrained lattice; NaN without one).
    """
    shape = series.shape_px
    px_pm = series.pixel_size_pm
    n = series.n_frames
    times = [np.nan] * n
    if seconds is not None:
        if len(seconds) != n:
            raise AtomlocInputError(f"{series.name}: {len(seconds)} frame times for a series of {n} frames")
        times = [1000.0 * float(s) for s in seconds]
    if "frame" not in positions or not positions["frame"].between(0, n - 1).all():
        raise AtomlocInputError(f"{series.name}: positions need a 'frame' column with values in 0..{n - 1}")
    if crlb is None:
        crlb = frame_crlb(series, labels, truth_kinds, transfer)
    labels = None if labels is None else select_transfer(labels, transfer)
    bound = {(int(f), str(r)): float(c) for f, r, c in zip(crlb["frame"], crlb["reference"], crlb["crlb_pm"])}
    per_column = {}
    if column_crlb is not None and len(column_crlb):
        for frame, g in column_crlb.groupby("frame"):
            per_column[int(frame)] = g.sort_values("column")["crlb_px"].to_numpy(dtype=np.float64)
    lattice = series.lattice_px
    in_focus, _ = series.in_focus()
    rows = []
    for frame in range(n):
        pred = positions.loc[positions["frame"] == frame, ["x", "y"]].to_numpy()
        refs = _references(series, labels, frame, truth_kinds)
        std_a = std_b = float("nan")
        if lattice is not None and len(pred) > 2:
            std_a, std_b, _, _ = lattice_parameter_precision(pred, lattice, px_pm)
        for ref_name, (ref, ignore) in refs.items():
            score, matches = score_detections(pred, ref, shape, match_radius_frac, border_frac, pixel_size_pm=px_pm,
                                              ignore=ignore, return_matches=True)
            crlb_matched = float("nan")
            if ref_name == "truth" and frame in per_column and len(matches):
                bounds = per_column[frame][matches[:, 1]]
                bounds = bounds[np.isfinite(bounds)]
                crlb_matched = float(np.sqrt(np.mean(bounds ** 2))) * px_pm if len(bounds) else float("nan")
            row = {"dataset": series.name, "frame": frame, "reference": ref_name, **score.as_dict()}
            if series.dose_e_per_A2 is not None:
                row["dose_e_per_A2"] = float(series.dose_e_per_A2[frame])
            if in_focus is not None:
                row["defocus_nm"] = float(series.defocus_nm[frame])
                row["in_focus"] = bool(in_focus[frame])
            row["time_ms"] = times[frame]
            row["fov_nm"] = shape[1] * px_pm / 1000.0
            if (frame, ref_name) not in bound:
                raise AtomlocInputError(f"{series.name}: no Cramér–Rao bound given for frame {frame} vs {ref_name}")
            row["crlb_pm"] = bound[(frame, ref_name)]
            row["rmse_over_crlb"] = score.rmse_pm / row["crlb_pm"] if row["crlb_pm"] > 0 else float("nan")
            row["crlb_matched_pm"] = crlb_matched
            row["lattice_a_std_pm"], row["lattice_b_std_pm"] = std_a, std_b
            rows.append(row)
    return pd.DataFrame(rows)


def strain_benchmark(series: Series, positions: dict, frame: int = 0, border_cells: float = 1.5,
                     tol_frac: float = 0.25, gpa_mask_sigma_frac: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Strain maps of each method's positions, of the truth positions and by GPA, against the applied strain.

    The reference lattice of every route is the specimen's unstrained lattice
    stored in the series (``attrs["lattice_px"]``), so a uniform strain is
    measured as such.  Detected columns are paired with the nearest truth column
    (within ``tol_frac`` x the shorter lattice vector) whose applied strain is the
    target; columns within ``border_cells`` lattice vectors of the edge are left
    out.  GPA is sampled at the truth columns.  The ``truth`` row (strain from
    the true positions) is the floor set by scan distortion, which the truth
    follows but the applied field does not contain.

    Parameters
    ----------
    series : Series
        A simulated series of a crystal (truth and ``lattice_px``).
    positions : dict of str to DataFrame
        Method name -> positions with ``x, y`` (and ``frame``) columns.
    frame : int

    Returns
    -------
    summary : DataFrame
        One row per route: ``method, n_columns``, RMS error of ``exx, eyy, exy,
        hydrostatic`` and ``hydrostatic_mean`` / ``hydrostatic_std``.
    columns : DataFrame
        ``method, x, y, exx, eyy, exy, omega, hydrostatic`` and the applied
        ``true_exx, true_eyy, true_exy, true_hydrostatic`` per column.
    """
    from scipy.spatial import cKDTree

    lattice = series.lattice_px
    if lattice is None or series.truth is None:
        raise AtomlocInputError(f"{series.name}: strain needs a crystal's lattice_px attribute and truth")
    image = series.frames[frame]
    h, w = image.shape
    truth_xy = series.truth.positions(frame)
    applied = np.asarray(series.truth.extra["strain"], dtype=np.float64)
    cell = float(max(np.hypot(*lattice[0]), np.hypot(*lattice[1])))
    tol = tol_frac * float(min(np.hypot(*lattice[0]), np.hypot(*lattice[1])))
    tree = cKDTree(truth_xy)
    routes = {"truth": truth_xy}
    for name, table in positions.items():
        sel = table[table["frame"] == frame] if "frame" in table else table
        routes[name] = sel[["x", "y"]].to_numpy(dtype=np.float64)
    gpa = gpa_strain(image, lattice, mask_sigma_frac=gpa_mask_sigma_frac, refine=False)
    frames = []
    for name, xy in routes.items():
        tab = strain_from_positions(xy, lattice, tol_frac)
        tab.insert(0, "method", name)
        frames.append(tab)
    gtab = pd.DataFrame({"method": "gpa", "x": truth_xy[:, 0], "y": truth_xy[:, 1],
                         **{k: sample_map(gpa[k], truth_xy) for k in ("exx", "eyy", "exy", "omega", "hydrostatic")}})
    frames.append(gtab)
    columns = pd.concat(frames, ignore_index=True)
    d, j = tree.query(columns[["x", "y"]].to_numpy(), distance_upper_bound=tol)
    found = np.isfinite(d)
    target = np.full((len(columns), 3), np.nan)
    target[found] = applied[j[found]]
    columns["true_exx"], columns["true_eyy"], columns["true_exy"] = target.T
    columns["true_hydrostatic"] = 0.5 * (target[:, 0] + target[:, 1])
    inner = ((columns.x >= border_cells * cell) & (columns.x <= w - 1 - border_cells * cell)
             & (columns.y >= border_cells * cell) & (columns.y <= h - 1 - border_cells * cell))
    columns = columns[inner & found].reset_index(drop=True)
    rows = []
    for name in [*routes, "gpa"]:
        c = columns[(columns.method == name) & columns.exx.notna()]
        row = {"method": name, "n_columns": len(c)}
        for k in ("exx", "eyy", "exy", "hydrostatic"):
            row[f"rms_error_{k}"] = float(np.sqrt(np.mean((c[k] - c[f"true_{k}"]) ** 2))) if len(c) else np.nan
        row["hydrostatic_mean"] = float(c.hydrostatic.mean()) if len(c) else np.nan
        row["hydrostatic_std"] = float(c.hydrostatic.std(ddof=1)) if len(c) > 1 else np.nan
        row["true_hydrostatic_mean"] = float(c.true_hydrostatic.mean()) if len(c) else np.nan
        rows.append(row)
    return pd.DataFrame(rows), columns


def label_errors_pm(series: Series, labels: pd.DataFrame, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each true column to its nearest reference label in one frame, pm.

    Parameters
    ----------
    series : Series
        A series with truth.
    labels : DataFrame
        Labels with ``frame, x, y`` (pixels), one transfer.
    frame : int

    Returns
    -------
    truth_xy : ndarray, shape (m, 2)
        True positions (x, y) in pixels.
    error_pm : ndarray, shape (m,)
        Distance to the nearest label in pm; NaN where no label lies within
        half the truth's nearest-neighbour spacing.
    """
    from scipy.spatial import cKDTree

    truth = series.truth.positions(frame)
    lab = labels.loc[labels["frame"] == frame, ["x", "y"]].to_numpy()
    if len(lab) == 0:
        return truth, np.full(len(truth), np.nan)
    d, _ = cKDTree(lab).query(truth, distance_upper_bound=0.5 * nearest_neighbour_spacing(truth))
    return truth, np.where(np.isfinite(d), d * series.pixel_size_pm, np.nan)


def evaluate_labels(series: Series, reference_index: int, labels: pd.DataFrame, match_radius_frac: float = 0.3,
                    border_frac: float = 0.5, truth_kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Score the reference labels against the truth.

    Parameters
    ----------
    series : Series
        The (unaligned) series with its truth.
    reference_index : int
        The frame the labels were found on (the aligned series' ``reference_index``).
    labels : DataFrame
        ``frame, x, y`` and, where there are several, ``transfer``.

    Returns
    -------
    DataFrame
        Rows: the reference frame itself (``reference_frame``), and every other
        frame after each transfer the labels hold (``rigid_transfer``,
        ``nonrigid_transfer``).  Empty if the series carries no truth.
    """
    if series.truth is None:
        return pd.DataFrame()
    transfers = sorted(set(labels["transfer"])) if "transfer" in labels else ["rigid"]
    by_transfer = {t: select_transfer(labels, t) for t in transfers}
    rows = []
    for frame in range(series.n_frames):
        truth, ignore = _references(series, labels, frame, truth_kinds)["truth"]
        for transfer in ([transfers[0]] if frame == reference_index else transfers):
            chosen = by_transfer[transfer]
            pred = chosen.loc[chosen["frame"] == frame, ["x", "y"]].to_numpy()
            score = score_detections(pred, truth, series.shape_px, match_radius_frac, border_frac,
                                     pixel_size_pm=series.pixel_size_pm, ignore=ignore)
            name = "reference_frame" if frame == reference_index else f"{transfer}_transfer"
            rows.append({"dataset": series.name, "frame": frame, "labels": name, **score.as_dict()})
    return pd.DataFrame(rows)
