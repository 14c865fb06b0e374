"""Learned locators: AtomID-net and the AtomSegNet-style U-Net (PyTorch, imported when called).

Models are given as a checkpoint path (``model``); the workflow passes the one it
trained, and ``model="auto"`` takes the pretrained weights shipped in the package
(:data:`SHIPPED_MODELS`).  Loaded models are cached per (path, modification time, device).

Before the network, an image is resampled so its column spacing lies in the band the
model was trained on (recorded in its sidecar) and positions are mapped back; after
it, detections are gated by the image's own noise (the classical methods' rule).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd

from atomloc.core.errors import AtomlocInputError
from atomloc.locate.nets import ATOMID, ATOMSEGNET, PRECISIONS
from atomloc.locate.params import Choice, Flag, Int, Real, Text
from atomloc.locate.refine import refine_peaks
from atomloc.locate.registry import AUTO, register
from atomloc.locate.tiles import known_spacing

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


SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models"
"""Folder of the pretrained weights shipped in the package (``<architecture>.pt`` + ``.json``),
made by the workflow's ``release`` target from ``workflow/configs/release.yaml``."""
RESCALE_MARGIN = 1.25
"""Inference resamples an image whose spacing lies outside the model's trained band
[lo, hi] into [lo * margin, hi / margin] (the spacing estimate may be off by this much)."""
Rescale = Annotated[str, Choice("auto", "none")]
"""``auto``: resample into the model's trained spacing band; ``none``: run at the image's own scale."""
TTA = Annotated[bool, Flag()]
"""Test-time D4 averaging of the network's outputs (8x its time)."""
Precision = Annotated[str, Choice(*PRECISIONS)]
"""The network's arithmetic (:data:`atomloc.locate.nets.PRECISIONS`): auto = bfloat16 on a CPU that runs
it natively, else float32."""


def shipped_model(architecture: str) -> Path:
    """Path of the pretrained weights of ``architecture`` shipped in the package (may not exist)."""
    return SHIPPED_MODELS / f"{architecture}.pt"


def resolve_model_path(model, architecture: str) -> Path:
    """The checkpoint file ``model``; none given = the shipped weights; a missing one raises with how to get it."""
    how = ("train one with the workflow (`snakemake --cores N` writes one per learned method under its models "
           "folder) and pass it with --model PATH (--param model=PATH)")
    if model in (AUTO, None, ""):
        path = shipped_model(architecture)
        if not path.is_file():
            raise AtomlocInputError(f"{architecture}: no model given and no pretrained weights at {path}; {how}")
        return path
    path = Path(model)
    if not path.is_file():
        raise AtomlocInputError(f"{architecture}: no trained model at {path}; {how}")
    return path


@functools.lru_cache(maxsize=8)
def _cached_model(path: str, mtime_ns: int, architecture: str, device: str):
    from atomloc.locate.nets.models import fold_batch_norm, load_checkpoint

    net, meta = load_checkpoint(path, architecture, None if device == AUTO else device)
    return fold_batch_norm(net), meta  # inference only: BatchNorm folded into the convolutions


def load_model(model, architecture: str, device: str = AUTO, with_meta: bool = False):
    """Load (and cache) the checkpoint ``model`` of ``architecture`` (``AUTO`` = the shipped weights).

    Returns the network (for inference: eval mode, BatchNorm folded by
    :func:`atomloc.locate.nets.models.fold_batch_norm`), or ``(network, sidecar
    dict)`` with ``with_meta``.
    """
    path = resolve_model_path(model, architecture)
    net, meta = _cached_model(str(path.resolve()), os.stat(path).st_mtime_ns, architecture, str(device))
    return (net, meta) if with_meta else net


DEFAULT_MIN_CONFIDENCE = 0.3
"""AtomID-net's NMS confidence floor for a model whose sidecar records no operating point."""


def operating_confidence(meta: dict) -> float:
    """The NMS confidence floor of a model: its sidecar's operating point, else :data:`DEFAULT_MIN_CONFIDENCE`."""
    return float(meta.get("operating_point", {}).get("min_confidence", DEFAULT_MIN_CONFIDENCE))


def trained_band(meta: dict) -> tuple[float, float] | None:
    """The spacing band (pixels) a model's library spans, from its sidecar; None if not recorded."""
    band = meta.get("library", {}).get("spacing_px_range")
    return (float(band[0]), float(band[1])) if band else None


def band_factor(spacing_px: float, band: tuple[float, float], margin: float = RESCALE_MARGIN) -> float:
    """Resampling factor that brings ``spacing_px`` into ``[lo * margin, hi / margin]`` (1 inside it)."""
    lo, hi = band[0] * margin, band[1] / margin
    if lo > hi:
        lo = hi = float(np.sqrt(band[0] * band[1]))
    return float(np.clip(spacing_px, lo, hi) / spacing_px)


def column_spacing(image: np.ndarray, name: str = "image") -> float | None:
    """Nearest-neighbour column spacing of ``image``, pixels; None where no lattice is found.

    The autocorrelation estimate (:func:`estimate_spacing`) finds the shortest
    strong repeat, which on a lattice with a basis (1T''-ReS2, dumbbells) can be
    a longer vector than the nearest-neighbour distance.  The columns that stand
    out of the noise at that spacing (:func:`atomloc.locate.classical.find_peaks`)
    give the median nearest-neighbour distance instead where there are at least
    ten of them.  Both run on the central 512 x 512 pixels at most (enough for
    spacings up to ~150 px; the resampling needs a few per cent, not more), or
    on the whole image where that centre shows no lattice (a specimen beside
    vacuum or a thick, amorphous region).
    """
    from atomloc.locate.classical import find_peaks
    from atomloc.locate.spacing import estimate_spacing

    h, w = image.shape
    crop = np.asarray(image)[max(0, h // 2 - 256):h // 2 + 256, max(0, w // 2 - 256):w // 2 + 256]
    try:
        repeat = estimate_spacing(crop, name=name)
    except AtomlocInputError:
        if crop.shape == image.shape:
            return None
        crop = np.asarray(image)  # the centre is vacuum, amorphous or too thick: the whole field
        try:
            repeat = estimate_spacing(crop, name=name)
        except AtomlocInputError:
            return None
    peaks = find_peaks(crop, repeat)
    nn = _median_nn(peaks[:, ::-1].astype(np.float64)) if len(peaks) >= 10 else float("nan")
    return float(min(nn, repeat)) if np.isfinite(nn) else float(repeat)


def network_scale(image: np.ndarray, spacing_px, meta: dict, rescale: str, name: str = "image") -> float:
    """The factor by which the network sees ``image`` (1 = its own scale).

    The spacing is ``spacing_px`` if given (None: there is no lattice), else
    :func:`column_spacing`.  A
    model whose sidecar names an inference spacing (``inference.spacing_px``:
    the shipped weights) sees every image at that spacing; others see an image
    resampled only when its spacing lies outside their trained band
    (:func:`band_factor`).  Where no lattice is found (vacuum, pure noise,
    aperiodic specimens) the image keeps its own scale.
    """
    band = trained_band(meta)
    if rescale == "none" or band is None:
        return 1.0
    if isinstance(spacing_px, str) and spacing_px == AUTO:
        spacing_px = column_spacing(image, name=name)
    if spacing_px is None:
        return 1.0
    target = meta.get("inference", {}).get("spacing_px")
    return float(target) / float(spacing_px) if target else band_factor(float(spacing_px), band)


MAX_RETRY_FACTOR = 4.0
"""The redo of :func:`run_at_scale` resamples at most this much finer than the first pass."""


def _median_nn(xy: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    if len(xy) < 3:
        return float("nan")
    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(d[:, 1]))


def run_at_scale(image: np.ndarray, factor: float, detect, band: tuple[float, float] | None = None) -> pd.DataFrame:
    """``detect(resampled image, factor)`` on ``image`` resampled by ``factor``; positions mapped back (pixels).

    With ``band`` (the model's trained spacing band), a result whose median
    nearest-neighbour distance falls below the band (the estimated spacing was
    a longer repeat of a lattice with a basis) is redone once at the scale that
    brings that distance to ``band[0] * RESCALE_MARGIN``.
    """
    from atomloc.core.image import resample, unresample_xy

    def at(f):
        if f == 1.0:
            return detect(np.asarray(image), 1.0), f
        scaled, factors = resample(image, f)
        found = detect(scaled, float(np.sqrt(factors[0] * factors[1])))
        if len(found):
            found = found.copy()
            found[["x", "y"]] = unresample_xy(found[["x", "y"]].to_numpy(), factors)
            if "sigma" in found:  # blob heads: their scale in pixels of the image
                found["sigma"] = found["sigma"] / np.sqrt(factors[0] * factors[1])
        return found, f

    found, factor = at(factor)
    if band is not None:
        seen = _median_nn(found[["x", "y"]].to_numpy()) * factor
        # at most 4x finer, and not for sub-pixel "spacings" (detections on noise)
        if 1.0 <= seen < band[0]:
            found, _ = at(factor * min(band[0] * RESCALE_MARGIN / seen, MAX_RETRY_FACTOR))
    return found


NO_LATTICE_FALSE_ALARMS = 0.01
"""Expected false alarms per image the noise gate allows where no lattice is found."""


def gate_by_noise(image: np.ndarray, found: pd.DataFrame, spacing_px: float | None = None,
                  lattice: bool = True, nominal_spacing_px: float = 8.0) -> pd.DataFrame:
    """Keep the detections backed by a column that stands out of the image's noise.

    The rule of the classical methods (:func:`atomloc.locate.classical.noise_filter`:
    a local maximum of the smoothed, background-subtracted image within
    0.15 x spacing + 1 px, above a false-alarm threshold in units of the noise),
    at the image's column spacing ``spacing_px`` (:func:`column_spacing`), as
    the classical methods judge their maxima; where it is not known, at the
    median nearest-neighbour distance of the detections (at least three), else
    at ``nominal_spacing_px``.  The detections' own spacing comes last because
    detections on noise shorten it, and a shorter spacing lets more noise
    through (on the real image DPC_HAADF-DF_1158 of the AtomID-Net demo set the
    gate kept 2,873 detections at the detections' spacing, 2,327 at the image's,
    which agree with gaussfit's at that spacing to F1 0.997).  But where the
    detections' median nearest-neighbour distance is shorter than the image's
    spacing, shared by most of them and between columns of about equal height
    (:func:`_dumbbells`: e.g. the dumbbells of GaAs [110], whose partners the
    image's longer spacing would merge; not the broad spread of detections on
    noise, nor a much weaker sublattice, which the usual weak-neighbour rule
    judges), the gate works at that distance.  Networks trained on one
    noise model fire on noise of another; the gate judges each detection on
    the image itself.  Where the image shows no lattice (``lattice=False``:
    pure noise, vacuum, single atoms) a column must stand out at
    :data:`NO_LATTICE_FALSE_ALARMS` expected false alarms per image, and no
    weaker neighbour is let through.
    """
    from atomloc.locate.classical import noise_filter

    xy = found[["x", "y"]].to_numpy(dtype=np.float64)
    if len(xy) == 0:
        return found
    own = _median_nn(xy)
    if lattice and spacing_px and np.isfinite(spacing_px) and np.isfinite(own) and 0 < own < spacing_px \
            and _dumbbells(image, xy, own):
        spacing_px = own  # a lattice with a basis (dumbbells): the columns' own neighbour distance
    if not spacing_px or not np.isfinite(spacing_px):
        spacing_px = own
    if not np.isfinite(spacing_px):
        spacing_px = nominal_spacing_px
    spacing_px = max(spacing_px, 2.0)
    rates = {}
    if not lattice:
        cells = np.asarray(image).size / spacing_px ** 2
        rate = min(0.001, NO_LATTICE_FALSE_ALARMS / cells)
        rates = {"false_alarm_rate": rate, "neighbour_false_alarm_rate": rate}
    return noise_filter(np.asarray(image, dtype=np.float64), found, spacing_px, **rates)


SHARED_DISTANCE_FRACTION = 0.8
""":func:`_dumbbells`: the fraction of detections whose nearest neighbour lies within
:data:`SHARED_DISTANCE_TOLERANCE` (relative) of the median distance."""

SHARED_DISTANCE_TOLERANCE = 0.2

PARTNER_HEIGHT_RATIO = 0.75
""":func:`_dumbbells`: the median height ratio (lower / higher) of neighbours at that distance."""


def _dumbbells(image: np.ndarray, xy: np.ndarray, distance_px: float) -> bool:
    """Whether the detections pair up like dumbbells at ``distance_px``.

    Most of them (:data:`SHARED_DISTANCE_FRACTION`) have their nearest
    neighbour within :data:`SHARED_DISTANCE_TOLERANCE` of ``distance_px`` (a
    lattice's motif, not the broad spread of nearest-neighbour distances of
    detections on noise), and those neighbours are of about equal height above
    the local background (median lower / higher >= :data:`PARTNER_HEIGHT_RATIO`;
    on the GaAs and CdTe [110] dumbbells of the linear foreign set 0.83-0.91, on
    the real image DPC_HAADF-DF_1158 of the AtomID-Net demo set, where the
    network also marks part of a weak second sublattice, 0.67).
    """
    from scipy.spatial import cKDTree

    from atomloc.locate.classical import heights_at

    if len(xy) < 10:
        return False
    d, j = cKDTree(xy).query(xy, k=2)
    close = np.abs(d[:, 1] / distance_px - 1.0) <= SHARED_DISTANCE_TOLERANCE
    if close.mean() < SHARED_DISTANCE_FRACTION:
        return False
    _, at = heights_at(image, xy, distance_px)
    a, b = at[close], at[j[close, 1]]
    ratio = np.minimum(a, b) / np.maximum(np.maximum(a, b), 1e-12)
    return bool(np.median(ratio) >= PARTNER_HEIGHT_RATIO)


def _nominal_spacing(meta: dict) -> float:
    """The spacing a model expects, pixels: its inference spacing, else its band's geometric middle, else 8."""
    band = trained_band(meta)
    return float(meta.get("inference", {}).get("spacing_px") or (np.sqrt(band[0] * band[1]) if band else 8.0))


def _lattice_spacing(image, spacing_px, rescale: str, noise_gate: bool):
    """The given spacing, else :func:`column_spacing` where the resampling or the gate needs it (None: no lattice).

    In a tile of a tiled run (:func:`atomloc.locate.registry.locate`) :func:`column_spacing` is that of the
    whole image, measured once (:func:`atomloc.locate.tiles.known_spacing`), so every tile agrees.
    """
    if not (isinstance(spacing_px, str) and spacing_px == AUTO):
        return float(spacing_px)
    return known_spacing(lambda: column_spacing(image)) if (rescale == "auto" or noise_gate) else None


def _locate_scaled(image, detect, meta: dict, spacing_px, rescale: str, noise_gate) -> pd.DataFrame:
    """A learned method's ``detect`` at the model's scale (:func:`run_at_scale`), then the noise gate."""
    band = trained_band(meta) if rescale == "auto" else None
    if noise_gate == AUTO:
        noise_gate = bool(meta.get("inference", {}).get("noise_gate", False))
    lattice = _lattice_spacing(image, spacing_px, rescale, noise_gate)
    found = run_at_scale(image, network_scale(image, lattice, meta, rescale), detect, band)
    if noise_gate:
        found = gate_by_noise(image, found, lattice, lattice=lattice is not None,
                              nominal_spacing_px=_nominal_spacing(meta))
    return found


@register(ATOMID,
          "AtomID-net: U-Net confidence map + global-spacing branch, max-pool proposals, boxes of the "
          "predicted spacing, greedy NMS (IoU 0.3) with a confidence lower bound; heads log/dog/doh optional. "
          "The image is resampled into the model's trained spacing band and detections are gated by the "
          "image's noise.",
          imports=_IMPORTS, needs_spacing=False, tile_spacing=column_spacing)
def atomid_locate(image: np.ndarray, spacing_px=AUTO, *, model: Model = AUTO,
                  min_confidence: Annotated[float | str, Real(ge=0, le=1, auto=True)] = AUTO,
                  window_px: Annotated[int, Int(ge=1)] = 3, iou_threshold: Annotated[float, Real(ge=0, le=1)] = 0.3,
                  head: Annotated[str, Choice(*HEADS)] = "nms", subpixel: Annotated[bool, Flag()] = True,
                  rescale: Rescale = "auto", noise_gate: Annotated[bool | str, Flag(auto=True)] = AUTO,
                  tta: TTA = False, max_tile_px: MaxTile = 1024, device: Device = AUTO,
                  precision: Precision = AUTO) -> pd.DataFrame:
    """AtomID-net: confidence map and spacing from the U-Net, then a detection head.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    spacing_px : float or "auto"
        Column spacing, pixels.  Sets the resampling (``rescale``) and the box
        side of the NMS head; ``"auto"``: estimated from the image for the
        resampling, and the spacing the network predicts for the boxes.
    model : path or "auto"
        Checkpoint file (:func:`atomloc.locate.nets.models.save_checkpoint`);
        ``"auto"`` = the pretrained weights shipped in the package.
    min_confidence : float or "auto"
        Lower bound on a proposal's confidence ("filter lower bound");
        ``"auto"`` = the operating point recorded with the model (chosen on its
        validation library), else :data:`DEFAULT_MIN_CONFIDENCE` (0.3).
    window_px : int
        Max-pooling window of the proposals (odd).
    iou_threshold : float
        NMS IoU threshold.
    head : str
        ``nms`` (AtomID-net) or ``log``, ``dog``, ``doh``: scikit-image blob
        detectors on the same confidence map (the study's head comparison).
    subpixel : bool
        Parabolic sub-pixel refinement of the NMS centres.
    rescale : str
        ``auto``: the image is resampled to the model's inference spacing, or
        into the spacing band it was trained on (:func:`network_scale`,
        :func:`run_at_scale`), and the positions are mapped back; ``none``: the
        image's own scale.
    noise_gate : bool or "auto"
        Keep only detections backed by a column that stands out of the image's
        noise (:func:`gate_by_noise`); ``"auto"`` = as the model's sidecar says
        (``inference.noise_gate``: on for the shipped weights, which meet data
        foreign to their library; off for a model the workflow trained on series
        like the ones it scores, where the gate costs recall: mean F1 0.663 with
        it vs 0.778 without on the default run's 20 test frames).
    tta : bool
        Test-time augmentation: the confidence map and the spacing features
        are averaged over the eight rotations and mirror images of the input
        (D4, each mapped back), 8x the network time
        (:func:`atomloc.locate.nets.models.predict`).
    max_tile_px : int
        Larger images are processed in overlapping tiles (same result).
    precision : str
        ``auto`` (bfloat16 convolutions on a CPU that runs them natively: half
        the network's time; the RMSE against the truth rose by 0.005-0.02 pm
        on simulated frames, with the same detections), ``fp32`` or ``bf16``
        (:func:`atomloc.locate.nets.models.predict`).

    Returns
    -------
    DataFrame with ``x, y, score`` (pixels of ``image``)

    References
    ----------
    .. [1] AtomID-Net: U-Net with a global-spacing branch and an NMS detection head for STEM
       atom detection (MPhil thesis, 2023/24); code: https://github.com/Lynyanyu/AtomID-Net.
    """
    from atomloc.locate.nets.heads import nms_head
    from atomloc.locate.nets.models import predict

    net, meta = load_model(model, ATOMID, device, with_meta=True)
    if min_confidence == AUTO:
        min_confidence = operating_confidence(meta)

    def detect(scaled, factor):
        maps, spacing = predict(net, scaled, max_tile_px=int(max_tile_px), tta=bool(tta), precision=precision)
        s = float(spacing[0]) if spacing_px == AUTO else float(spacing_px) * factor
        if head == "nms":
            return nms_head(maps[0], s, float(min_confidence), int(window_px), float(iou_threshold), bool(subpixel))
        from atomloc.locate.classical import dog_blobs, doh_blobs, log_blobs

        return {"log": log_blobs, "dog": dog_blobs, "doh": doh_blobs}[head](maps[0], s)

    return _locate_scaled(image, detect, meta, spacing_px, rescale, noise_gate)


@register(ATOMSEGNET,
          "AtomSegNet-style U-Net (modified chi-square loss) segmentation map, Otsu (or the model's "
          "calibrated) threshold, connected components, centroids; optional 2-D Gaussian refinement. "
          "The image is resampled into the model's trained spacing band and detections are gated by the "
          "image's noise.",
          imports=_IMPORTS, needs_spacing=False, tile_spacing=column_spacing)
def atomsegnet_locate(image: np.ndarray, spacing_px=AUTO, *, model: Model = AUTO,
                      threshold: Annotated[float | str, Real(ge=0, le=1, auto=True)] = AUTO,
                      min_area_px: Annotated[int, Int(ge=1)] = 2,
                      refine: Annotated[str, Choice("none", "gaussian")] = "none", rescale: Rescale = "auto",
                      noise_gate: Annotated[bool | str, Flag(auto=True)] = AUTO, tta: TTA = False,
                      max_tile_px: MaxTile = 1024, device: Device = AUTO,
                      precision: Precision = AUTO) -> pd.DataFrame:
    """AtomSegNet-style U-Net: segmentation map, threshold, connected components, centroids.

    ``threshold`` (map units 0-1): ``"auto"`` = the operating point recorded
    with the model (chosen on its validation library), else Otsu's threshold of
    each map.  ``min_area_px`` is in pixels of the network's input.
    ``rescale``, ``noise_gate``, ``tta`` (D4 test-time averaging of the map)
    and ``precision`` as for :func:`atomid_locate`.
    ``refine="gaussian"`` refines each centroid by the batched 2-D Gaussian fit
    on the image (patch radius 0.4 x spacing; ``spacing_px`` auto = estimated
    from the image).

    Returns
    -------
    DataFrame with ``x, y, score`` (pixels of ``image``)

    References
    ----------
    .. [1] R. Lin, R. Zhang, C. Wang, X.-Q. Yang, H. L. Xin, "TEMImageNet training library
       and AtomSegNet deep-learning models for high-precision atom segmentation,
       localization, denoising, and deblurring of atomic-resolution images",
       Sci. Rep. 11, 5386 (2021).
    """
    from atomloc.locate.nets.heads import otsu_centroid_head
    from atomloc.locate.nets.models import predict

    net, meta = load_model(model, ATOMSEGNET, device, with_meta=True)
    if threshold == AUTO:
        threshold = meta.get("operating_point", {}).get("threshold")

    def detect(scaled, factor):
        maps, _ = predict(net, scaled, max_tile_px=int(max_tile_px), tta=bool(tta), precision=precision)
        return otsu_centroid_head(maps[0], int(min_area_px), None if threshold is None else float(threshold))

    found = _locate_scaled(image, detect, meta, spacing_px, rescale, noise_gate)
    if refine == "none" or found.empty:
        return found
    from atomloc.locate.spacing import estimate_spacing

    s = estimate_spacing(image) if spacing_px == AUTO else float(spacing_px)
    peaks = np.rint(found[["y", "x"]].to_numpy()).astype(int)
    return refine_peaks(np.asarray(image, dtype=np.float64), peaks, 0.4 * s, 0.2 * s)
