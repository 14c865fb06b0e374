"""Reference labelling of a series from its best frame.

The scheme of the AtomID study: locate the columns of the best frame, refine
them, and give those labels to every frame of the series through the measured
alignment (rigid, or rigid plus the row-wise slow-scan shifts).  Because
simulated series carry their truth, the labels themselves are
scored (:func:`atomloc.analysis.metrics.score_detections`) and the label error is a
result of the workflow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atomloc.core.errors import AtomlocInputError
from atomloc.io.series import Series
from atomloc.locate.registry import locate
from atomloc.series.align import transfer_positions


def label_reference_frame(frame: np.ndarray, method: str = "gaussfit", params: dict | None = None,
                          name: str = "reference frame") -> pd.DataFrame:
    """Locate and refine the columns of the reference frame with a registered method."""
    return locate(frame, method, name=name, **(params or {}))


def transfer_labels(labels: pd.DataFrame, drift_px: np.ndarray, row_shift_px: np.ndarray | None = None,
                    transfer: str = "rigid") -> pd.DataFrame:
    """Carry reference-frame labels into every frame through the measured alignment.

    Parameters
    ----------
    labels : DataFrame
        Positions ``x, y`` (and optional columns) in the reference frame, pixels.
    drift_px : ndarray, shape (n, 2)
        Drift (dx, dy) of each frame relative to the reference
        (:mod:`atomloc.series.align` convention).
    row_shift_px : ndarray, shape (n, H, 2), optional
        Row-wise (slow-scan) shifts of each frame beyond the drift
        (:func:`atomloc.series.align.estimate_row_shifts`); None = rigid transfer.
    transfer : str
        Name written in the ``transfer`` column (``rigid`` / ``nonrigid``).

    Returns
    -------
    DataFrame
        One block per frame with leading ``frame`` and ``transfer`` columns;
        positions may fall outside a frame after the shift and are kept
        (scoring applies a margin).
    """
    blocks = []
    for k, drift in enumerate(np.asarray(drift_px, dtype=np.float64)):
        block = labels.copy()
        rows = None if row_shift_px is None else row_shift_px[k]
        block["x"], block["y"] = transfer_positions(labels["x"].to_numpy(), labels["y"].to_numpy(), drift, rows)
        block.insert(0, "transfer", transfer)
        block.insert(0, "frame", k)
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def select_transfer(labels: pd.DataFrame, transfer: str) -> pd.DataFrame:
    """The labels of one transfer (``rigid`` / ``nonrigid``); files without the column hold one."""
    if "transfer" not in labels:
        return labels
    chosen = labels[labels["transfer"] == transfer]
    if chosen.empty:
        raise AtomlocInputError(f"labels hold no {transfer!r} transfer (have {sorted(set(labels['transfer']))})")
    return chosen


def training_positions(series: Series, labels: pd.DataFrame, source: str, transfer: str = "rigid",
                       name: str = "series") -> pd.DataFrame:
    """Label positions of every frame for training: the transferred reference labels or the truth.

    Returns
    -------
    DataFrame
        ``frame, x, y`` in each frame's pixel coordinates.
    """
    if source == "reference":
        return select_transfer(labels, transfer)[["frame", "x", "y"]].reset_index(drop=True)
    if source != "truth":
        raise AtomlocInputError(f"training source must be 'reference' or 'truth' (got {source!r})")
    if series.truth is None:
        raise AtomlocInputError(f"{name}: training source 'truth' but the series stores no truth")
    x, y = series.truth.x, series.truth.y
    frame = np.repeat(np.arange(len(x)), x.shape[1])
    return pd.DataFrame({"frame": frame, "x": x.ravel(), "y": y.ravel()})
