"""Scoring of a method's positions on every frame of a series, against the truth
the simulator stored and against the reference labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from atomloc.errors import AtomlocInputError
from atomloc.io import read_positions, read_series
from atomloc.label import select_transfer
from atomloc.metrics import score_detections


def truth_positions(series: dict, frame: int, kinds: Sequence[str] | None = None) -> np.ndarray:
    """True (x, y) pixel positions of ``frame``, optionally only columns of the given kinds."""
    truth = series["truth"]
    keep = np.ones(truth["x"].shape[1], bool) if not kinds else np.isin(truth["kind"], list(kinds))
    return np.column_stack([truth["x"][frame][keep], truth["y"][frame][keep]])


def evaluate_series(series_path, labels_path, positions_path, timing_path=None,
                    match_radius_frac: float = 0.3, border_frac: float = 0.5,
                    truth_kinds: Sequence[str] | None = None, transfer: str = "rigid") -> pd.DataFrame:
    """Score per-frame positions against the truth (where stored) and the reference labels.

    Parameters
    ----------
    series_path : path-like
        Series HDF5 (frames, attributes, ``truth`` group).
    labels_path : path-like
        Reference labels CSV with a ``frame`` column (``reference_label`` rule).
    positions_path : path-like
        Positions CSV of every frame, with a ``frame`` column
        (:func:`atomloc.methods.locate_series`).
    timing_path : path-like, optional
        JSON whose ``seconds`` lists the time spent in ``locate`` per frame.
    match_radius_frac, border_frac : float
        See :func:`atomloc.metrics.score_detections`.
    truth_kinds : sequence of str, optional
        Column kinds scored in the truth (default: all).
    transfer : str
        Which transfer of the labels to score against (``rigid`` / ``nonrigid``).

    Returns
    -------
    DataFrame
        One row per (frame, reference) with the fields of
        :class:`atomloc.metrics.DetectionScore`, ``dose_e_per_A2`` and ``time_ms``.
    """
    series = read_series(series_path)
    shape = series["frames"].shape[1:]
    px_pm = float(series["attrs"]["pixel_size_pm"])
    labels = select_transfer(read_positions(labels_path), transfer)
    n = len(series["frames"])
    times = [np.nan] * n
    if timing_path is not None:
        seconds = json.loads(Path(timing_path).read_text())["seconds"]
        if len(seconds) != n:
            raise AtomlocInputError(f"{timing_path}: {len(seconds)} frame times for a series of {n} frames")
        times = [1000.0 * float(s) for s in seconds]
    table = read_positions(positions_path)
    if "frame" not in table or not table["frame"].between(0, n - 1).all():
        raise AtomlocInputError(f"{positions_path}: needs a 'frame' column with values in 0..{n - 1}")
    rows = []
    for frame in range(n):
        pred = table.loc[table["frame"] == frame, ["x", "y"]].to_numpy()
        refs = {"labels": labels.loc[labels["frame"] == frame, ["x", "y"]].to_numpy()}
        if "truth" in series:
            refs = {"truth": truth_positions(series, frame, truth_kinds), **refs}
        for ref_name, ref in refs.items():
            score = score_detections(pred, ref, shape, match_radius_frac, border_frac, pixel_size_pm=px_pm)
            row = {"dataset": Path(series_path).stem, "frame": frame, "reference": ref_name, **score.as_dict()}
            if "dose_e_per_A2" in series:
                row["dose_e_per_A2"] = float(series["dose_e_per_A2"][frame])
            row["time_ms"] = times[frame]
            rows.append(row)
    return pd.DataFrame(rows)


def evaluate_labels(series_path, aligned_path, labels_path, match_radius_frac: float = 0.3,
                    border_frac: float = 0.5, truth_kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Score the reference labels against the truth.

    Rows: the reference frame itself (``reference_frame``), and every other
    frame after each transfer the labels file holds (``rigid_transfer``,
    ``nonrigid_transfer``).  Empty if the series carries no truth.
    """
    series = read_series(series_path)
    if "truth" not in series:
        return pd.DataFrame()
    aligned = read_series(aligned_path)
    ref_index = int(aligned["attrs"]["reference_index"])
    labels = read_positions(labels_path)
    transfers = sorted(set(labels["transfer"])) if "transfer" in labels else ["rigid"]
    by_transfer = {t: select_transfer(labels, t) for t in transfers}
    shape = series["frames"].shape[1:]
    px_pm = float(series["attrs"]["pixel_size_pm"])
    rows = []
    for frame in range(len(series["frames"])):
        truth = truth_positions(series, frame, truth_kinds)
        for transfer in ([transfers[0]] if frame == ref_index else transfers):
            chosen = by_transfer[transfer]
            pred = chosen.loc[chosen["frame"] == frame, ["x", "y"]].to_numpy()
            score = score_detections(pred, truth, shape, match_radius_frac, border_frac, pixel_size_pm=px_pm)
            name = "reference_frame" if frame == ref_index else f"{transfer}_transfer"
            rows.append({"dataset": Path(series_path).stem, "frame": frame, "labels": name, **score.as_dict()})
    return pd.DataFrame(rows)
