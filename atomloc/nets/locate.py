"""Locate columns with a trained AtomID-net or AtomSegNet-style model.

Models are found at ``model`` (a checkpoint path) or, for ``"auto"``, at the
workflow's output ``results/models/<architecture>.pt`` under the current
directory.  Loaded models are cached per (path, modification time, device).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd

from atomloc.errors import AtomlocInputError

AUTO = "auto"
HEADS = ("nms", "log", "dog", "doh")


def default_model_path(architecture: str) -> Path:
    """Where the workflow writes the trained model: ``results/models/<architecture>.pt``."""
    return Path("results") / "models" / f"{architecture}.pt"


def resolve_model_path(model, architecture: str) -> Path:
    """The checkpoint to use; a missing one raises with how to get it."""
    path = default_model_path(architecture) if model in (AUTO, None, "") else Path(model)
    if not path.is_file():
        how = (f"train one with `snakemake --cores N {default_model_path(architecture)}` in the workflow "
               f"directory, or pass --model PATH (--param model=PATH)")
        raise AtomlocInputError(f"{architecture}: no trained model at {path}; {how}")
    return path


@functools.lru_cache(maxsize=8)
def _cached_model(path: str, mtime_ns: int, architecture: str, device: str):
    from atomloc.nets.models import load_checkpoint

    return load_checkpoint(path, architecture, None if device == AUTO else device)[0]


def load_model(model, architecture: str, device: str = AUTO):
    """Load (and cache) the checkpoint for ``architecture``."""
    path = resolve_model_path(model, architecture)
    return _cached_model(str(path.resolve()), os.stat(path).st_mtime_ns, architecture, str(device))


def atomid_locate(image: np.ndarray, spacing_px=AUTO, model=AUTO, min_confidence: float = 0.3, window_px: int = 3,
                  iou_threshold: float = 0.3, head: str = "nms", subpixel: bool = True, max_tile_px: int = 1024,
                  device: str = AUTO) -> pd.DataFrame:
    """AtomID-net: confidence map and spacing from the U-Net, then a detection head.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    spacing_px : float or "auto"
        Box side of the NMS head, pixels; ``"auto"`` uses the spacing the
        network predicts for this image.
    model : path or "auto"
        Checkpoint (see :func:`resolve_model_path`).
    min_confidence : float
        Lower bound on a proposal's confidence ("filter lower bound").
    window_px : int
        Max-pooling window of the proposals (odd).
    iou_threshold : float
        NMS IoU threshold.
    head : str
        ``nms`` (AtomID-net) or ``log``, ``dog``, ``doh``: scikit-image blob
        detectors on the same confidence map (the study's head comparison).
    subpixel : bool
        Parabolic sub-pixel refinement of the NMS centres.
    max_tile_px : int
        Larger images are processed in overlapping tiles (same result).

    Returns
    -------
    DataFrame with ``x, y, score`` (pixels)
    """
    from atomloc.nets.heads import nms_head
    from atomloc.nets.models import predict

    if head not in HEADS:
        raise AtomlocInputError(f"atomid: head must be one of {HEADS} (got {head!r})")
    net = load_model(model, "atomid", device)
    maps, spacing = predict(net, image, max_tile_px=int(max_tile_px))
    conf = maps[0]
    s = float(spacing[0]) if spacing_px == AUTO else float(spacing_px)
    if head == "nms":
        return nms_head(conf, s, float(min_confidence), int(window_px), float(iou_threshold), bool(subpixel))
    from atomloc.methods import doh_blobs, dog_blobs, log_blobs

    detector = {"log": log_blobs, "dog": dog_blobs, "doh": doh_blobs}[head]
    return detector(conf, s)


def atomsegnet_locate(image: np.ndarray, spacing_px=AUTO, model=AUTO, min_area_px: int = 2, refine: str = "none",
                      max_tile_px: int = 1024, device: str = AUTO) -> pd.DataFrame:
    """AtomSegNet-style U-Net: segmentation map, Otsu threshold, connected components, centroids.

    ``refine="gaussian"`` refines each centroid by the batched 2-D Gaussian fit
    on the image (patch radius 0.4 x spacing; ``spacing_px`` auto = estimated
    from the image).

    Returns
    -------
    DataFrame with ``x, y, score`` (pixels)
    """
    from atomloc.nets.heads import otsu_centroid_head
    from atomloc.nets.models import predict

    if refine not in ("none", "gaussian"):
        raise AtomlocInputError(f"atomsegnet: refine must be none or gaussian (got {refine!r})")
    net = load_model(model, "atomsegnet", device)
    maps, _ = predict(net, image, max_tile_px=int(max_tile_px))
    found = otsu_centroid_head(maps[0], int(min_area_px))
    if refine == "none" or found.empty:
        return found
    from atomloc.methods import _refine_peaks
    from atomloc.spacing import estimate_spacing

    s = estimate_spacing(image) if spacing_px == AUTO else float(spacing_px)
    peaks = found[["y", "x"]].to_numpy()
    return _refine_peaks(np.asarray(image, dtype=np.float64), peaks, 0.4 * s, 0.2 * s)
