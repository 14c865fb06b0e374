"""Training pairs (frames + label positions) and the synthetic training library, as HDF5.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from atomloc.core.errors import AtomlocInputError
from atomloc.io.positions import POSITION_COLUMNS
from atomloc.io.series import _attr, _decode, _open_series, write_h5

LABEL_SOURCES = ("reference", "truth")


def write_training_pairs(path: str | os.PathLike, frames: np.ndarray, positions: pd.DataFrame, label_source: str,
                         attrs: Mapping | None = None) -> None:
    """Write (frame, label positions) pairs for the learned methods to HDF5, atomically.

    Layout: ``frames`` float32 [n, H, W]; group ``positions`` with ``frame``
    int32 [N], ``x``, ``y`` float64 [N] (pixels, x = column index, in that
    frame's own coordinates); attributes ``label_source`` (``reference``:
    labels of the best frame carried to every frame; ``truth``: the simulated
    truth) and ``attrs``.
    """
    if label_source not in LABEL_SOURCES:
        raise AtomlocInputError(f"{path}: label_source must be one of {LABEL_SOURCES} (got {label_source!r})")
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3:
        raise AtomlocInputError(f"{path}: frames must be [n, H, W], got shape {frames.shape}")
    missing = [c for c in ("frame", *POSITION_COLUMNS) if c not in positions.columns]
    if missing:
        raise AtomlocInputError(f"{path}: label positions lack columns {missing}")
    pos = positions.sort_values("frame", kind="stable")
    columns = {"frame": pos["frame"].to_numpy(np.int32), **{k: pos[k].to_numpy(np.float64) for k in POSITION_COLUMNS}}
    write_h5(path, frames, {**(attrs or {}), "label_source": label_source}, groups={"positions": columns})


def read_training_pairs(path: str | os.PathLike) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """Read :func:`write_training_pairs` output: frames, per-frame (m, 2) (x, y) arrays, attributes."""
    path = Path(path)
    with _open_series(path) as f:
        if "positions" not in f:
            raise AtomlocInputError(f"{path}: not a training-pairs file (no 'positions' group)")
        frames = f["frames"][()]
        frame = f["positions/frame"][()]
        xy = np.column_stack([f["positions/x"][()], f["positions/y"][()]])
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
    return frames, [xy[frame == k] for k in range(len(frames))], attrs


LIBRARY_MAPS = ("confidence", "gaussian_mask", "circular_mask")

# The restoration targets a library may hold besides (atomloc.simulate.library.restoration_maps; io sits
# below simulate, so the names are spelled here and a test checks they agree).
RESTORATION_MAPS = ("no_noise", "no_background_no_noise", "superres",
                    "no_noise_x2", "no_background_no_noise_x2", "superres_x2")


LIBRARY_ARRAYS = ("spacing_px", "pixel_size_pm", "electrons_per_px", "defocus_nm", "rotation_deg", "structure")


def write_library(path: str | os.PathLike, library: Mapping, attrs: Mapping | None = None) -> None:
    """Write a training library (:func:`atomloc.simulate.library.synthesize_library`) to HDF5, atomically.

    Layout: ``frames`` float32 [n, H, W] (the images); group ``labels`` with
    :data:`LIBRARY_MAPS` [n, H, W]; group ``positions`` with ``image`` int32
    [N], ``x``, ``y`` [N] (pixels); per-image arrays :data:`LIBRARY_ARRAYS`.
    The restoration targets :data:`RESTORATION_MAPS` the library holds go into
    ``labels`` too.
    """
    pos = library["positions"]
    index = np.concatenate([np.full(len(p), k, dtype=np.int32) for k, p in enumerate(pos)])
    xy = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in pos])
    maps = LIBRARY_MAPS + tuple(k for k in RESTORATION_MAPS if k in library)
    write_h5(path, library["images"], dict(attrs or {}), arrays={k: library[k] for k in LIBRARY_ARRAYS},
                 groups={"labels": {k: np.asarray(library[k], dtype=np.float32) for k in maps},
                         "positions": {"image": index, "x": xy[:, 0], "y": xy[:, 1]}},
                 compression="gzip")


def read_library(path: str | os.PathLike) -> dict:
    """Read :func:`write_library` output into the dict of :func:`atomloc.simulate.library.synthesize_library`."""
    path = Path(path)
    with _open_series(path) as f:
        if "labels" not in f or "positions" not in f:
            raise AtomlocInputError(f"{path}: not a training library (needs groups 'labels' and 'positions')")
        out = {"images": f["frames"][()], "attrs": {k: _attr(v) for k, v in f.attrs.items()}}
        for key in LIBRARY_MAPS + tuple(k for k in RESTORATION_MAPS if f"labels/{k}" in f):
            out[key] = f[f"labels/{key}"][()]
        for key in LIBRARY_ARRAYS:
            out[key] = _decode(f[key][()])
        index = f["positions/image"][()]
        xy = np.column_stack([f["positions/x"][()], f["positions/y"][()]])
    out["positions"] = [xy[index == k] for k in range(len(out["images"]))]
    if not np.all(np.isfinite(out["images"])):
        raise AtomlocInputError(f"{path}: library images contain NaN or infinite pixels")
    return out
