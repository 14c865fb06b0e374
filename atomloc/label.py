"""Reference labelling of a series from its best frame.

The scheme of the AtomID study: locate the columns of the best frame, refine
them, and give those labels to every frame of the series through the measured
drift.  Because simulated series carry their truth, the labels themselves are
scored (:func:`atomloc.metrics.score_detections`) and the label error is a
result of the workflow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atomloc.methods import locate


def label_reference_frame(frame: np.ndarray, method: str = "gaussfit", params: dict | None = None,
                          name: str = "reference frame") -> pd.DataFrame:
    """Locate and refine the columns of the reference frame with a registered method."""
    return locate(frame, method, name=name, **(params or {}))


def transfer_labels(labels: pd.DataFrame, drift_px: np.ndarray) -> pd.DataFrame:
    """Carry reference-frame labels into every frame through the measured drift.

    Parameters
    ----------
    labels : DataFrame
        Positions ``x, y`` (and optional columns) in the reference frame, pixels.
    drift_px : ndarray, shape (n, 2)
        Drift (dx, dy) of each frame relative to the reference
        (:mod:`atomloc.align` convention).

    Returns
    -------
    DataFrame
        One block per frame with a leading ``frame`` column; positions may fall
        outside a frame after the shift and are kept (scoring applies a margin).
    """
    blocks = []
    for k, (dx, dy) in enumerate(np.asarray(drift_px, dtype=np.float64)):
        block = labels.copy()
        block["x"] = block["x"] + dx
        block["y"] = block["y"] + dy
        block.insert(0, "frame", k)
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)
