"""Positions: one CSV per image, columns ``x, y`` (pixels; ``x`` = column index,
``y`` = row index, centre of pixel (0, 0) at (0.0, 0.0)) and optional
``score, sigma, element``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from atomloc.core.errors import AtomlocInputError
from atomloc.io.files import atomic_path

POSITION_COLUMNS = ("x", "y")


CSV_FLOAT_FORMAT = "%.5f"


def write_positions(path: str | os.PathLike, positions: pd.DataFrame) -> None:
    """Write a positions table (``x, y`` and optional columns) atomically as CSV.

    Floats are written with a fixed format so that equal inputs give equal bytes.
    """
    missing = [c for c in POSITION_COLUMNS if c not in positions.columns]
    if missing:
        raise ValueError(f"positions for {path} lack columns {missing}")
    with atomic_path(path) as tmp:
        positions.to_csv(tmp, index=False, float_format=CSV_FLOAT_FORMAT)


def read_positions(path: str | os.PathLike) -> pd.DataFrame:
    """Read a positions CSV written by :func:`write_positions`.

    Raises
    ------
    AtomlocInputError
        If the file is missing, unreadable, lacks ``x``/``y`` or holds NaN positions.
    """
    path = Path(path)
    if not path.is_file():
        raise AtomlocInputError(f"{path}: positions file not found")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise AtomlocInputError(f"{path}: positions file is empty (no header)") from exc
    except Exception as exc:
        raise AtomlocInputError(f"{path}: cannot read positions ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in POSITION_COLUMNS if c not in df.columns]
    if missing:
        raise AtomlocInputError(f"{path}: positions file lacks columns {missing}")
    if df[list(POSITION_COLUMNS)].isna().any().any():
        raise AtomlocInputError(f"{path}: positions file holds NaN coordinates")
    return df
