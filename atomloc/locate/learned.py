"""Learned locators: AtomID-net and the AtomSegNet-style U-Net (PyTorch, imported when called).

Models are given as a checkpoint path (``model``); the workflow passes the one it
trained.  Loaded models are cached per (path, modification time, device).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd

from atomloc.core.errors import AtomlocInputError
from atomloc.locate.nets import ATOMID, ATOMSEGNET
from atomloc.locate.params import Choice, Flag, Int, Real, Text
from atomloc.locate.refine import refine_peaks
from atomloc.locate.registry import AUTO, register

BLOB_HEADS = ("log", "dog", "doh")
"""scikit-image blob detectors that can replace AtomID-net's NMS head on its confidence map."""
HEADS = ("nms", *BLOB_HEADS)
_IMPORTS = ("torch", "atomloc.locate.nets.models", "atomloc.locate.nets.heads")
Model = Annotated[str, Text(auto=True, what="a checkpoint path")]
"""A checkpoint path."""
MaxTile = Annotated[int, Int(ge=256)]
"""Larger images go through the network in overlapping tiles of at most this side (> twice the 96 px margin)."""
Device = Annotated[str, Text(pattern=r"auto|cpu|mps|cuda(:\d+)?", what="auto, cpu, mps, cuda or cuda:N")]
"""PyTorch device; auto = CUDA if available."""


def resolve_model_path(model, architecture: str) -> Path:
    """The checkpoint file ``model``; a missing one (or none given) raises with how to get it."""
    how = ("train one with the workflow (`snakemake --cores N` writes one per learned method under its models "
           "folder) and pass it with --model PATH (--param model=PATH)")
    if model in (AUTO, None, ""):
        raise AtomlocInputError(f"{architecture}: no model given; {how}")
    path = Path(model)
    if not path.is_file():
        raise AtomlocInputError(f"{architecture}: no trained model at {path}; {how}")
    return path


@functools.lru_cache(maxsize=8)
def _cached_model(path: str, mtime_ns: int, architecture: str, device: str):
    from atomloc.locate.nets.models import load_checkpoint

    return load_checkpoint(path, architecture, None if device == AUTO else device)[0]


def load_model(model, architecture: str, device: str = AUTO):
    """Load (and cache) the checkpoint ``model`` of ``architecture``."""
    path = resolve_model_path(model, architecture)
    return _cached_model(str(path.resolve()), os.stat(path).st_mtime_ns, architecture, str(device))


@register(ATOMID,
          "AtomID-net: U-Net confidence map + global-spacing branch, max-pool proposals, boxes of the "
          "predicted spacing, greedy NMS (IoU 0.3) with a confidence lower bound; heads log/dog/doh optional.",
          imports=_IMPORTS, needs_spacing=False)

def atomid_locate(image: np.ndarray, spacing_px=AUTO, *, model: Model = AUTO,
                  min_confidence: Annotated[float, Real(ge=0, le=1)] = 0.3,
                  window_px: Annotated[int, Int(ge=1)] = 3, iou_threshold: Annotated[float, Real(ge=0, le=1)] = 0.3,
                  head: Annotated[str, Choice(*HEADS)] = "nms", subpixel: Annotated[bool, Flag()] = True,
                  max_tile_px: MaxTile = 1024, device: Device = AUTO) -> pd.DataFrame:
    """AtomID-net: confidence map and spacing from the U-Net, then a detection head.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    spacing_px : float or "auto"
        Box side of the NMS head, pixels; ``"auto"`` uses the spacing the
        network predicts for this image.
    model : path
        Checkpoint file (:func:`atomloc.locate.nets.models.save_checkpoint`).
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

    References
    ----------
    .. [1] AtomID-Net: U-Net with a global-spacing branch and an NMS detection head for STEM
       atom detection (MPhil thesis, 2023/24); code: https://github.com/Lynyanyu/AtomID-Net.
    """
    from atomloc.locate.nets.heads import nms_head
    from atomloc.locate.nets.models import predict

    net = load_model(model, ATOMID, device)
    maps, spacing = predict(net, image, max_tile_px=int(max_tile_px))
    conf = maps[0]
    s = float(spacing[0]) if spacing_px == AUTO else float(spacing_px)
    if head == "nms":
        return nms_head(conf, s, float(min_confidence), int(window_px), float(iou_threshold), bool(subpixel))
    from atomloc.locate.classical import dog_blobs, doh_blobs, log_blobs

    detector = {"log": log_blobs, "dog": dog_blobs, "doh": doh_blobs}[head]
    return detector(conf, s)


@register(ATOMSEGNET,
          "AtomSegNet-style U-Net (modified chi-square loss) segmentation map, Otsu threshold, "
          "connected components, centroids; optional 2-D Gaussian refinement.",
          imports=_IMPORTS, needs_spacing=False)
def atomsegnet_locate(image: np.ndarray, spacing_px=AUTO, *, model: Model = AUTO,
                      min_area_px: Annotated[int, Int(ge=1)] = 2,
                      refine: Annotated[str, Choice("none", "gaussian")] = "none", max_tile_px: MaxTile = 1024,
                      device: Device = AUTO) -> pd.DataFrame:
    """AtomSegNet-style U-Net: segmentation map, Otsu threshold, connected components, centroids.

    ``refine="gaussian"`` refines each centroid by the batched 2-D Gaussian fit
    on the image (patch radius 0.4 x spacing; ``spacing_px`` auto = estimated
    from the image).

    Returns
    -------
    DataFrame with ``x, y, score`` (pixels)

    References
    ----------
    .. [1] R. Lin, R. Zhang, C. Wang, X.-Q. Yang, H. L. Xin, "TEMImageNet training library
       and AtomSegNet deep-learning models for high-precision atom segmentation,
       localization, denoising, and deblurring of atomic-resolution images",
       Sci. Rep. 11, 5386 (2021).
    """
    from atomloc.locate.nets.heads import otsu_centroid_head
    from atomloc.locate.nets.models import predict

    net = load_model(model, ATOMSEGNET, device)
    maps, _ = predict(net, image, max_tile_px=int(max_tile_px))
    found = otsu_centroid_head(maps[0], int(min_area_px))
    if refine == "none" or found.empty:
        return found
    from atomloc.locate.spacing import estimate_spacing

    s = estimate_spacing(image) if spacing_px == AUTO else float(spacing_px)
    peaks = found[["y", "x"]].to_numpy()
    return refine_peaks(np.asarray(image, dtype=np.float64), peaks, 0.4 * s, 0.2 * s)
