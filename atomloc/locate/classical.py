"""Classical locators: threshold + centroid, scikit-image blob detectors, local maxima +
2-D Gaussian fit, FindFoci and Richardson-Lucy deconvolution + Gaussian fit.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.feature import blob_dog, blob_doh, blob_log
from skimage.filters import threshold_otsu
from skimage.measure import label
from skimage.morphology import disk
from skimage.segmentation import watershed

from atomloc.core.errors import AtomlocInputError
from atomloc.core.image import normalise, render_columns
from atomloc.locate.findfoci import BACKGROUND_METHODS, CENTRE_METHODS, PEAK_METHODS, SEARCH_METHODS, find_foci
from atomloc.locate.noise import (
    background_window_px,
    height_map,
    noise_height_threshold,
    noise_sigma,
    peak_heights,
    spacing_background,
)
from atomloc.locate.params import Choice, Flag, Int, Real
from atomloc.locate.refine import fit_gaussian_pairs, fit_gaussians, refine_peaks
from atomloc.locate.registry import AUTO, _auto, _positive, register

# What the parameters accept (:mod:`atomloc.locate.params`); "auto" = derived from the spacing.
AutoPx = Annotated[float | str, Real(gt=0, auto=True)]
AutoCount = Annotated[int | str, Int(ge=1, auto=True)]
AutoDistance = Annotated[float | str, Real(ge=1, auto=True)]
Fraction = Annotated[float, Real(ge=0, le=1)]
NonNegative = Annotated[float, Real(ge=0)]
FalseAlarms = Annotated[float, Real(gt=0, lt=1)]
PRESETS = ("noise", "study")
Preset = Annotated[str, Choice(*PRESETS)]
AutoNonNegative = Annotated[float | str, Real(ge=0, auto=True)]

BLOB_THRESHOLDS = {"log": {"study": 0.1, "noise": 0.02}, "dog": {"study": 0.1, "noise": 0.02},
                   "doh": {"study": 0.004, "noise": 0.004}}
"""The blob detectors' ``threshold`` for ``"auto"``: the AtomID-net study's settings, and lower ones
where the noise test (``preset="noise"``) decides which blobs are columns (not for DoH: below 0.004
scikit-image's pruning of the many more blobs takes minutes on a 1024 x 1024 image)."""

FINDFOCI_PARAMS = {"study": {"background_param": 0.1, "peak_param": 0.3},
                   "noise": {"background_param": 0.03, "peak_param": 0.1}}
"""FindFoci's ``background_param`` and ``peak_param`` for ``"auto"``, per preset (as :data:`BLOB_THRESHOLDS`)."""


def _prepare(image, spacing_px, preset):
    """The image a detector runs on: as it is (``study``) or without its background (``noise``).

    ``noise`` subtracts the local level between columns
    (:func:`atomloc.locate.noise.spacing_background`), so contamination, thickness and vacuum no longer take the
    intensity range that the detector's 0-1 scaling and thresholds work in.
    """
    image = np.asarray(image, dtype=np.float64)
    if preset == "study":
        return image
    return image - spacing_background(image, spacing_px)


def _finish(image, table, spacing_px, preset, false_alarm_rate, neighbour_false_alarm_rate, bias_px=0.0,
            maxima=None):
    """``study``: the detector's output; ``noise``: only the detections that stand out of the noise."""
    if preset == "study":
        return table
    return noise_filter(image, table, spacing_px, false_alarm_rate, neighbour_false_alarm_rate, bias_px=bias_px,
                        maxima=maxima)




WEAK_SUBLATTICE_GAP_FRAC = 0.25
"""The second Otsu level looks for weaker columns farther than this fraction of the spacing from the
regions above the first level."""


def _threshold_regions(image, spacing_px, smooth_sigma_px, threshold, min_area_px, levels=1):
    """Smooth, scale to 0-1, threshold; return the label image, the smoothed image and the threshold.

    With ``levels=2`` (and ``threshold="otsu"``) a second Otsu threshold of the
    pixels farther than :data:`WEAK_SUBLATTICE_GAP_FRAC` x spacing from the
    regions above the first adds the columns of a weaker sublattice, which one
    global threshold between the bright columns and everything else leaves out
    (ReS2's S, SrTiO3's O and Ti-O columns); the returned threshold is then a
    map (each region's own level).
    """
    sigma = _positive("smooth_sigma_px", _auto(smooth_sigma_px, 0.1 * spacing_px))
    min_area = _auto(min_area_px, max(1.0, 0.05 * spacing_px ** 2))
    smooth = normalise(ndimage.gaussian_filter(image, sigma))

    def regions(mask):
        labels = label(mask)
        area = np.bincount(labels.ravel())
        small = area < min_area
        small[0] = True
        labels[small[labels]] = 0
        return labels

    t = threshold_otsu(smooth) if threshold == "otsu" else float(threshold)
    labels = regions(smooth > t)
    if levels == 1 or threshold != "otsu":
        return labels, smooth, t
    gap = max(1, int(round(WEAK_SUBLATTICE_GAP_FRAC * spacing_px)))
    near = ndimage.binary_dilation(smooth > t, disk(gap))
    if near.all():
        return labels, smooth, t
    t_weak = threshold_otsu(smooth[~near])
    weak = regions((smooth > t_weak) & ~near)
    weak[weak > 0] += labels.max()
    return labels + weak, smooth, np.where(labels > 0, t, t_weak)


def _split_merged(labels, smooth, peaks):
    """Split the components that hold several maxima standing out of the noise, one region per maximum.

    At low dose one threshold joins neighbouring columns (graphene's 1.42 Å
    pairs) into one component, whose centroid is then neither column.  Each
    component holding two or more of ``peaks`` ((n, 2) row, col: the maxima of
    :func:`find_peaks`) is divided by scikit-image's marker watershed of the
    smoothed image; the other components stay as they are.
    """
    peaks = np.asarray(peaks, dtype=int).reshape(-1, 2)
    if len(peaks) == 0 or labels.max() == 0:
        return labels
    at = labels[peaks[:, 0], peaks[:, 1]]
    counts = np.bincount(at, minlength=labels.max() + 1)
    counts[0] = 0
    merged = counts >= 2
    if not merged.any():
        return labels
    seeds = peaks[merged[at]]
    markers = np.zeros(labels.shape, dtype=np.int64)
    markers[seeds[:, 0], seeds[:, 1]] = labels.max() + 1 + np.arange(len(seeds))
    region = merged[labels]
    return np.where(region, watershed(-smooth, markers, mask=region), labels)


def _split_at_significant_maxima(image, labels, smooth, spacing_px, false_alarm_rate, neighbour_false_alarm_rate):
    """:func:`_split_merged` at the maxima of ``image`` that stand out of the noise (:func:`find_peaks`); also
    returns those maxima (:func:`image_maxima`), which the noise test of the detections judges again."""
    maxima = image_maxima(image, spacing_px)
    peaks = find_peaks(image, spacing_px, false_alarm_rate=false_alarm_rate,
                       neighbour_false_alarm_rate=neighbour_false_alarm_rate, maxima=maxima)
    return _split_merged(labels, smooth, peaks), maxima


def _components_table(labels, weights, smooth):
    """Centroid of each labelled component, weighted by ``weights`` (ones = plain centroid)."""
    index = np.unique(labels[labels > 0])
    if len(index) == 0:
        return pd.DataFrame({"x": [], "y": [], "score": []})
    rows, cols = np.indices(labels.shape)
    total = ndimage.sum(weights, labels, index)
    total = np.where(total > 0, total, 1.0)
    return pd.DataFrame({"x": ndimage.sum(weights * cols, labels, index) / total,
                         "y": ndimage.sum(weights * rows, labels, index) / total,
                         "score": ndimage.mean(smooth, labels, index)})


@register("threshold_centroid",
          "Gaussian smoothing, global threshold (Otsu or fixed, on the image scaled to 0-1), "
          "connected components, unweighted centroid of each component; by default on the image without its "
          "background, with a second Otsu level for a weaker sublattice, keeping the components that stand out "
          "of the noise.")
def threshold_centroid(image, spacing_px=AUTO, *, smooth_sigma_px: AutoPx = AUTO,
                       threshold: Annotated[float | str, Real(ge=0, le=1, choices=("otsu",))] = "otsu",
                       min_area_px: Annotated[float | str, Real(ge=0, auto=True)] = AUTO, preset: Preset = "noise",
                       false_alarm_rate: FalseAlarms = 0.001, neighbour_false_alarm_rate: FalseAlarms = 0.1):
    """Threshold + plain centroid of each connected component.

    ``smooth_sigma_px`` auto = 0.1 x spacing; ``min_area_px`` auto = 0.05 x
    spacing^2 (components smaller than this are noise).  ``threshold`` is
    ``"otsu"`` or a number in [0, 1] on the percentile-normalised image.
    ``preset="noise"`` (default) runs on the image without its background
    (the level between columns, at the spacing's scale), adds a second Otsu
    level for a weaker sublattice away from the bright columns
    (:func:`_threshold_regions`) and keeps the detections that stand out of the
    image's noise (:func:`noise_filter`, with ``false_alarm_rate`` and
    ``neighbour_false_alarm_rate``); ``preset="study"`` runs on the raw image
    alone with one threshold, as the AtomID-net study did.
    """
    labels, smooth, _ = _threshold_regions(_prepare(image, spacing_px, preset), spacing_px, smooth_sigma_px,
                                           threshold, min_area_px, levels=1 if preset == "study" else 2)
    maxima = None
    if preset == "noise":
        labels, maxima = _split_at_significant_maxima(image, labels, smooth, spacing_px, false_alarm_rate,
                                                      neighbour_false_alarm_rate)
    return _finish(image, _components_table(labels, np.ones_like(smooth), smooth), spacing_px, preset,
                   false_alarm_rate, neighbour_false_alarm_rate, maxima=maxima)


@register("threshold_wcentroid",
          "As threshold_centroid, but each component's centre is its intensity-weighted centroid "
          "(weights: smoothed intensity above the threshold).")
def threshold_wcentroid(image, spacing_px=AUTO, *, smooth_sigma_px: AutoPx = AUTO,
                        threshold: Annotated[float | str, Real(ge=0, le=1, choices=("otsu",))] = "otsu",
                        min_area_px: Annotated[float | str, Real(ge=0, auto=True)] = AUTO, preset: Preset = "noise",
                        false_alarm_rate: FalseAlarms = 0.001, neighbour_false_alarm_rate: FalseAlarms = 0.1):
    """Threshold + intensity-weighted centroid of each connected component.

    The weights are the smoothed intensity above the threshold, so the pedestal
    does not pull the centre to the component's geometric centre.  Parameters
    as :func:`threshold_centroid`.
    """
    labels, smooth, t = _threshold_regions(_prepare(image, spacing_px, preset), spacing_px, smooth_sigma_px,
                                           threshold, min_area_px, levels=1 if preset == "study" else 2)
    maxima = None
    if preset == "noise":
        labels, maxima = _split_at_significant_maxima(image, labels, smooth, spacing_px, false_alarm_rate,
                                                      neighbour_false_alarm_rate)
    return _finish(image, _components_table(labels, np.clip(smooth - t, 0.0, None), smooth), spacing_px, preset,
                   false_alarm_rate, neighbour_false_alarm_rate, maxima=maxima)


def blob_sigma_range(spacing_px, min_sigma_px=AUTO, max_sigma_px=AUTO):
    """(min, max) blob sigma in pixels: the study's max = sqrt(spacing) capped at 10; min = 0.1 x spacing, >= 0.5 px."""
    min_sigma = _positive("min_sigma_px", _auto(min_sigma_px, max(0.5, 0.1 * spacing_px)))
    max_sigma = _positive("max_sigma_px", _auto(max_sigma_px, max(min_sigma, min(np.sqrt(spacing_px), 10.0))))
    if max_sigma < min_sigma:
        raise AtomlocInputError(f"max_sigma_px ({max_sigma}) must be >= min_sigma_px ({min_sigma})")
    return min_sigma, max_sigma


def _detect_blobs(detector, image, spacing_px, min_sigma_px, max_sigma_px, **kwargs):
    """Run a scikit-image blob detector on the 0-1 scaled image with the spacing's sigma range."""
    min_sigma, max_sigma = blob_sigma_range(spacing_px, min_sigma_px, max_sigma_px)
    img = normalise(image)
    return _blob_table(img, detector(img, min_sigma=min_sigma, max_sigma=max_sigma, **kwargs))


def _blob_table(img, blobs):
    """Positions of bright blobs (rows y, x, sigma); dark blobs (positive Laplacian) are dropped."""
    blobs = np.asarray(blobs, dtype=np.float64).reshape(-1, 3)
    r, c = blobs[:, 0].astype(int), blobs[:, 1].astype(int)
    lap = np.zeros(len(blobs))
    score = np.zeros(len(blobs))
    for sigma in np.unique(blobs[:, 2]):
        sel = blobs[:, 2] == sigma
        lap[sel] = ndimage.gaussian_laplace(img, sigma)[r[sel], c[sel]]
        score[sel] = ndimage.gaussian_filter(img, sigma)[r[sel], c[sel]]
    bright = lap < 0
    return pd.DataFrame({"x": blobs[bright, 1], "y": blobs[bright, 0], "score": score[bright],
                         "sigma": blobs[bright, 2]})


@register("log",
          "scikit-image blob_log (Laplacian of Gaussian) on the image scaled to 0-1; "
          "max_sigma = sqrt(spacing) capped at 10, threshold 0.1 (the AtomID-net study's settings); by default on "
          "the image without its background, keeping the blobs that stand out of the noise.")
def log_blobs(image, spacing_px=AUTO, *, min_sigma_px: AutoPx = AUTO, max_sigma_px: AutoPx = AUTO,
              num_sigma: Annotated[int, Int(ge=1)] = 10, threshold: AutoNonNegative = AUTO, overlap: Fraction = 0.5,
              preset: Preset = "noise",
              false_alarm_rate: FalseAlarms = 0.001, neighbour_false_alarm_rate: FalseAlarms = 0.1):
    """Laplacian-of-Gaussian blobs (``skimage.feature.blob_log``).

    Runs on the image scaled so that its 0.5 / 99.5 percentiles are 0 / 1.
    ``min_sigma_px`` / ``max_sigma_px`` auto: :func:`blob_sigma_range`;
    ``threshold`` auto: :data:`BLOB_THRESHOLDS` for the preset.
    Positions are whole pixels (the scale-space maximum); blobs darker than
    their surroundings (e.g. the empty hexagon centres of MX2) are dropped.
    ``preset="noise"`` (default) runs on the image without its background
    (the level between columns, at the spacing's scale) and keeps the
    detections that stand out of the image's noise (:func:`noise_filter`, with
    ``false_alarm_rate`` and ``neighbour_false_alarm_rate``);
    ``preset="study"`` runs on the raw image alone, as the AtomID-net study did.

    References
    ----------
    .. [1] T. Lindeberg, "Feature detection with automatic scale selection",
       Int. J. Comput. Vis. 30, 79-116 (1998).
    """
    threshold = _auto(threshold, BLOB_THRESHOLDS["log"][preset])
    blobs = _detect_blobs(blob_log, _prepare(image, spacing_px, preset), spacing_px, min_sigma_px, max_sigma_px,
                          num_sigma=int(num_sigma), threshold=float(threshold), overlap=float(overlap),
                          exclude_border=False)
    return _finish(image, blobs, spacing_px, preset, false_alarm_rate, neighbour_false_alarm_rate)


@register("dog",
          "scikit-image blob_dog (difference of Gaussians) on the image scaled to 0-1; "
          "max_sigma = sqrt(spacing) capped at 10, threshold 0.1 (the AtomID-net study's settings); by default on "
          "the image without its background, keeping the blobs that stand out of the noise.")
def dog_blobs(image, spacing_px=AUTO, *, min_sigma_px: AutoPx = AUTO, max_sigma_px: AutoPx = AUTO,
              sigma_ratio: Annotated[float, Real(gt=1)] = 1.6, threshold: AutoNonNegative = AUTO,
              overlap: Fraction = 0.5, preset: Preset = "noise",
              false_alarm_rate: FalseAlarms = 0.001, neighbour_false_alarm_rate: FalseAlarms = 0.1):
    """Difference-of-Gaussian blobs (``skimage.feature.blob_dog``); otherwise (``preset`` too) as :func:`log_blobs`."""
    threshold = _auto(threshold, BLOB_THRESHOLDS["dog"][preset])
    blobs = _detect_blobs(blob_dog, _prepare(image, spacing_px, preset), spacing_px, min_sigma_px, max_sigma_px,
                          sigma_ratio=float(sigma_ratio), threshold=float(threshold), overlap=float(overlap),
                          exclude_border=False)
    return _finish(image, blobs, spacing_px, preset, false_alarm_rate, neighbour_false_alarm_rate)


DOH_BIAS_PX = 2.0 ** 0.5
"""How far ``blob_doh``'s positions sit from a round column's centre: its box-filter Hessian puts them
0-2 px (mostly 1 px) up and left, depending on the box size and the column width (measured with
scikit-image 0.26 on rendered columns); :func:`noise_filter` looks this much farther for the maximum
that supports a DoH blob."""


@register("doh",
          "scikit-image blob_doh (determinant of Hessian) on the image scaled to 0-1; "
          "max_sigma = sqrt(spacing) capped at 10, threshold 0.004 (the AtomID-net study's settings); by default "
          "on the image without its background, with a second pass for a weaker sublattice where the noise test "
          "finds maxima the first left out, keeping the blobs that stand out of the noise.")
def doh_blobs(image, spacing_px=AUTO, *, min_sigma_px: AutoPx = AUTO, max_sigma_px: AutoPx = AUTO,
              num_sigma: Annotated[int, Int(ge=1)] = 10, threshold: AutoNonNegative = AUTO, overlap: Fraction = 0.5,
              preset: Preset = "noise",
              false_alarm_rate: FalseAlarms = 0.001, neighbour_false_alarm_rate: FalseAlarms = 0.1):
    """Determinant-of-Hessian blobs (``skimage.feature.blob_doh``).

    The determinant is positive for bright and dark blobs alike, so the sign
    of the Laplacian keeps the bright ones.  scikit-image approximates the
    Hessian with box filters on the integral image; on round columns its
    positions sit 0-2 px (mostly 1 px) up and left of the centre, by an
    amount that depends on the box size and the column width (measured here,
    kept as it is: this method is scikit-image's detector).
    ``preset="noise"`` adds a second pass for a weaker sublattice on the
    maxima that stand out of the noise but lie away from every blob of the
    first (:func:`_unexplained`).  Otherwise (``preset`` too) as
    :func:`log_blobs`.
    """
    threshold = _auto(threshold, BLOB_THRESHOLDS["doh"][preset])
    prepared = _prepare(image, spacing_px, preset)
    options = {"num_sigma": int(num_sigma), "threshold": float(threshold), "overlap": float(overlap)}
    blobs = _detect_blobs(blob_doh, prepared, spacing_px, min_sigma_px, max_sigma_px, **options)
    maxima = None
    if preset == "noise":
        maxima = image_maxima(image, spacing_px)
        rest = _unexplained(image, prepared, blobs, spacing_px, false_alarm_rate, neighbour_false_alarm_rate,
                            maxima)
        if rest is not None:
            weak = _detect_blobs(blob_doh, rest, spacing_px, min_sigma_px, max_sigma_px, **options)
            blobs = pd.concat([blobs, weak], ignore_index=True)
    return _finish(image, blobs, spacing_px, preset, false_alarm_rate, neighbour_false_alarm_rate,
                   bias_px=DOH_BIAS_PX, maxima=maxima)


def _unexplained(image, prepared, blobs, spacing_px, false_alarm_rate, neighbour_false_alarm_rate, maxima=None):
    """Where a second blob-detector pass should look for a weaker sublattice, or None.

    DoH's response grows as the square of a blob's height, so a threshold on the
    0-1 scaled image that keeps noise out leaves columns a tenth as bright as the
    brightest (ReS2's S, SrTiO3's O) out too, and a threshold low enough to reach
    them makes scikit-image prune tens of thousands of noise blobs (minutes per
    1024 x 1024 image).  So the second pass runs only on the maxima that stand out
    of the noise (:func:`find_peaks`, the two-threshold rule) but lie farther than
    sqrt(2) x the blobs' median sigma + :data:`WEAK_SUBLATTICE_GAP_FRAC` x spacing
    from every blob found: the background-subtracted image ``prepared`` within half
    a spacing of such a maximum (outside the found blobs' neighbourhoods), zero
    elsewhere.  Its detections face the same noise test (:func:`noise_filter`)
    as the first pass's.  ``maxima``: :func:`image_maxima`, if already computed.
    """
    peaks = find_peaks(image, spacing_px, false_alarm_rate=false_alarm_rate,
                       neighbour_false_alarm_rate=neighbour_false_alarm_rate, maxima=maxima)
    if len(peaks) == 0:
        return None
    near = np.zeros(prepared.shape, dtype=bool)
    if len(blobs):
        xy = blobs[["x", "y"]].to_numpy(dtype=np.float64)
        radius = np.sqrt(2) * float(np.median(blobs["sigma"])) + WEAK_SUBLATTICE_GAP_FRAC * spacing_px
        distance, _ = cKDTree(xy).query(peaks[:, ::-1].astype(np.float64))
        peaks = peaks[distance > radius]
        if len(peaks) == 0:
            return None
        near = _within(prepared.shape, xy[:, ::-1], radius)
    support = _within(prepared.shape, peaks, 0.5 * spacing_px) & ~near
    rest = np.where(support, prepared, 0.0)
    return rest if np.ptp(rest) > 0 else None


def _within(shape, rows_cols, radius_px):
    """Pixels within ``radius_px`` of any of the (row, col) positions (rounded to whole pixels)."""
    seeds = np.ones(shape, dtype=bool)
    rc = np.rint(np.asarray(rows_cols, dtype=np.float64)).astype(int)
    seeds[np.clip(rc[:, 0], 0, shape[0] - 1), np.clip(rc[:, 1], 0, shape[1] - 1)] = False
    return ndimage.distance_transform_edt(seeds) <= radius_px


def peak_settings(spacing_px, smooth_sigma_px=AUTO, min_distance_px=AUTO) -> dict:
    """The filters of :func:`find_peaks` for a spacing: the keyword arguments of
    :func:`atomloc.locate.noise.peak_heights`.

    ``smooth_sigma_px`` auto = spacing / 6 (at least 0.5 px: about the width of
    a column, the matched filter); ``min_distance_px`` auto = 0.5 x spacing
    (of two maxima closer than that, the lower is dropped: two columns are at
    least a spacing apart, and a noise maximum on a column's flank is closer);
    the background is the minimum over 2 x spacing, blurred over one spacing.
    """
    sigma = _positive("smooth_sigma_px", _auto(smooth_sigma_px, max(0.5, spacing_px / 6.0)))
    min_distance = float(_auto(min_distance_px, max(1.0, 0.5 * spacing_px)))
    return {"smooth_sigma_px": float(sigma), "min_distance_px": min_distance,
            "background_width_px": background_window_px(spacing_px), "background_sigma_px": float(spacing_px)}


def find_peaks(image, spacing_px, smooth_sigma_px=AUTO, min_distance_px=AUTO, false_alarm_rate=0.001,
               neighbour_false_alarm_rate=0.1, threshold_rel=0.0, maxima_of=None, maxima=None):
    """Local maxima of the smoothed, background-subtracted image that stand out of the noise.

    Two thresholds on the height above the local background, both set by the
    image's noise level (:func:`atomloc.locate.noise.noise_sigma`) through
    :func:`atomloc.locate.noise.noise_height_threshold`:

    - a maximum that white noise reaches at ``false_alarm_rate`` (false
      detections on pure noise as a fraction of the columns) is a column;
    - a weaker maximum is a column if white noise reaches it at
      ``neighbour_false_alarm_rate`` and it lies within 1.6 spacings of a column
      of the first kind (the weak sublattice of a crystal next to its heavy
      columns; on pure noise the two together stay below 1 % of the columns).

    ``threshold_rel`` > 0 also drops maxima lower than that fraction of the
    99.9th percentile of the smoothed image above its minimum.  Filters:
    :func:`peak_settings`.  ``maxima_of``, an image of the same shape (e.g. a
    deconvolved one, whose noise is no longer white), supplies the positions of
    the maxima instead; their heights are still read from ``image``.
    ``maxima``, :func:`image_maxima` of ``image`` at ``spacing_px`` (with the
    automatic filters), saves computing them again.

    Returns
    -------
    ndarray, shape (n, 2)
        Peak positions as integer (row, col) pixel indices, highest first.
    """
    settings = peak_settings(spacing_px, smooth_sigma_px, min_distance_px)
    if maxima is not None:
        if settings != peak_settings(spacing_px) or maxima_of is not None:
            raise AtomlocInputError("find_peaks: maxima= holds the maxima of the image at the automatic filters only")
        peaks, heights, sigma = maxima
    elif maxima_of is None:
        peaks, heights = peak_heights(image, **settings)
        sigma = noise_sigma(image)
    else:
        peaks, _ = peak_heights(maxima_of, **settings)
        heights = height_map(image, **_map_settings(settings))[peaks[:, 0], peaks[:, 1]]
        sigma = noise_sigma(image)
    keep = stand_out(peaks, heights, sigma, spacing_px, settings, false_alarm_rate, neighbour_false_alarm_rate)
    if threshold_rel > 0 and len(heights):
        smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float64), settings["smooth_sigma_px"])
        keep &= heights > float(threshold_rel) * np.percentile(smooth - smooth.min(), 99.9)
    return peaks[keep]


def image_maxima(image, spacing_px) -> tuple[np.ndarray, np.ndarray, float]:
    """The local maxima of ``image`` with the filters of :func:`peak_settings` for ``spacing_px``, their
    heights above the local background (image units) and the image's pixel noise (:func:`noise_sigma`).

    What :func:`find_peaks` and :func:`noise_filter` judge; a method that calls both passes
    this to each (``maxima=``) so it is computed once.

    Returns
    -------
    peaks : ndarray of int, shape (n, 2)
        (row, col) pixel indices, highest first.
    heights : ndarray, shape (n,)
    sigma : float
    """
    peaks, heights = peak_heights(image, **peak_settings(spacing_px))
    return peaks, heights, noise_sigma(image)


def _map_settings(settings: dict) -> dict:
    """:func:`peak_settings` without the minimum distance: the keyword arguments of ``height_map``."""
    return {k: v for k, v in settings.items() if k != "min_distance_px"}


def stand_out(peaks, heights, sigma, spacing_px, settings, false_alarm_rate=0.001,
              neighbour_false_alarm_rate=0.1) -> np.ndarray:
    """Which maxima stand out of the noise: the two-threshold rule of :func:`find_peaks`.

    Parameters
    ----------
    peaks : ndarray, shape (n, 2)
        Positions (row, col), pixels.
    heights : ndarray, shape (n,)
        Their heights above the local background (``height_map`` with ``settings``), image units.
    sigma : float
        Pixel noise of the image (``noise_sigma``), image units.
    spacing_px : float
        Column spacing, pixels.
    settings : dict
        The filters that made the heights (:func:`peak_settings`).
    false_alarm_rate, neighbour_false_alarm_rate : float
        As for :func:`find_peaks`.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    peaks = np.asarray(peaks, dtype=np.float64).reshape(-1, 2)
    heights = np.asarray(heights, dtype=np.float64)
    strong_floor = noise_height_threshold(sigma, spacing_px, false_alarm_rate=float(false_alarm_rate), **settings)
    weak_floor = noise_height_threshold(sigma, spacing_px, false_alarm_rate=float(neighbour_false_alarm_rate),
                                        **settings)
    keep = heights > strong_floor
    weak = np.nonzero(~keep & (heights > min(weak_floor, strong_floor)))[0]
    if keep.any() and len(weak):
        distance, _ = cKDTree(peaks[keep]).query(peaks[weak], distance_upper_bound=NEIGHBOUR_REACH * spacing_px)
        keep[weak[np.isfinite(distance)]] = True
    return keep


NEIGHBOUR_REACH = 1.6
"""How far (in spacings) from a column that clearly stands out a weaker maximum may lie and still count."""


SNAP_FRAC = 0.15
"""How far (in spacings, plus 1 px) a detection may lie from the local maximum that supports it."""


def noise_filter(image, table: pd.DataFrame, spacing_px, false_alarm_rate=0.001,
                 neighbour_false_alarm_rate=0.1, *, bias_px: float = 0.0, maxima=None) -> pd.DataFrame:
    """Keep the detections of ``table`` (``x, y``, pixels) that stand out of the noise (:func:`stand_out`).

    A detection is a column only where the smoothed, background-subtracted
    image (:func:`peak_settings` for the spacing) has a local maximum within
    ``SNAP_FRAC`` x spacing + 1 px (+ ``bias_px``, a detector's known position
    bias) of it, and the nearest to that maximum of the detections it could back;
    that maximum's height is then judged (a detection on the flank of a column,
    or between two, has none).  Of
    detections closer than the peak search's minimum distance (0.5 x spacing)
    only the highest is kept.  ``maxima``: :func:`image_maxima` of ``image`` at
    ``spacing_px``, if already computed.
    """
    if len(table) == 0:
        return table
    settings = peak_settings(spacing_px)
    peaks, peak_h, sigma = image_maxima(image, spacing_px) if maxima is None else maxima
    xy = table[["x", "y"]].to_numpy(dtype=np.float64)
    heights = np.full(len(xy), -np.inf)
    distance = np.full(len(xy), np.inf)
    if len(peaks):
        reach = SNAP_FRAC * spacing_px + 1.0 + bias_px
        distance, nearest = cKDTree(peaks[:, ::-1]).query(xy, distance_upper_bound=reach)
        found = np.nonzero(np.isfinite(distance))[0]
        # each maximum backs one detection, the nearest
        found = found[np.lexsort((distance[found], nearest[found]))]
        found = found[np.r_[True, np.diff(nearest[found]) != 0]] if len(found) else found
        heights[found] = peak_h[nearest[found]]
    keep = stand_out(xy[:, ::-1], heights, sigma, spacing_px, settings, false_alarm_rate,
                     neighbour_false_alarm_rate)
    # One detection per column: of detections closer than the peak search's minimum distance
    # (a blob found at two scales, a column split in two), the highest stays (of equal heights, the
    # nearer to its maximum).
    rank = np.lexsort((distance, -heights)).argsort()  # 0 = highest, then nearest
    for i, j in sorted(cKDTree(xy).query_pairs(settings["min_distance_px"]),
                       key=lambda ij: min(rank[ij[0]], rank[ij[1]])):
        if keep[i] and keep[j]:
            keep[j if rank[i] < rank[j] else i] = False
    return table[keep].reset_index(drop=True)



def heights_at(image, xy, spacing_px) -> tuple[np.ndarray, np.ndarray]:
    """The height above the local background (:func:`peak_settings` filters for ``spacing_px``) at the pixel of
    each point ``xy`` ((n, 2) x, y, pixels; clipped to the image).

    Returns
    -------
    ij : ndarray of int, shape (n, 2)
        (row, col) of each point's pixel.
    heights : ndarray, shape (n,)
        Image units.
    """
    image = np.asarray(image, dtype=np.float64)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    h, w = image.shape
    ij = np.column_stack([np.clip(np.rint(xy[:, 1]), 0, h - 1), np.clip(np.rint(xy[:, 0]), 0, w - 1)]).astype(np.int64)
    return ij, height_map(image, **_map_settings(peak_settings(spacing_px)))[ij[:, 0], ij[:, 1]]


def backed_by(image, table: pd.DataFrame, spacing_px, false_alarm_rate=0.001,
              neighbour_false_alarm_rate=0.1) -> pd.DataFrame:
    """Keep detections made on another image of the same field (a restored or deconvolved one) where
    ``image`` backs them.

    The height of ``image``'s smoothed, background-subtracted map (:func:`peak_settings`
    for the spacing) at each detection's pixel is judged by :func:`stand_out` with
    ``image``'s own noise: the rule by which :func:`rl_gaussfit` judges the maxima of its
    deconvolved image.  Unlike :func:`noise_filter` no local maximum is needed and nothing
    is merged, so both columns of a resolved close pair stay where the image is bright
    at both.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The raw image, any units.
    table : DataFrame
        Detections with ``x, y`` (pixels, x = column index, pixel centres at integers).
    spacing_px : float
        Column spacing, pixels.
    false_alarm_rate, neighbour_false_alarm_rate : float
        As for :func:`find_peaks`.

    Returns
    -------
    DataFrame
        The rows of ``table`` that stand out, in order.
    """
    if len(table) == 0:
        return table
    image = np.asarray(image, dtype=np.float64)
    ij, heights = heights_at(image, table[["x", "y"]].to_numpy(np.float64), spacing_px)
    keep = stand_out(ij, heights, noise_sigma(image), spacing_px, peak_settings(spacing_px), false_alarm_rate,
                     neighbour_false_alarm_rate)
    return table[keep].reset_index(drop=True)


PAIR_MIN_DISTANCE_SIGMA = 3.0
"""A second column of a close pair lies at least this many column sigmas from the first (resolved)."""
PAIR_MOTIF_FRACTION = 0.2
"""Close pairs are a motif of the lattice: a pair is kept only if at least this fraction of the columns
forms a pair with the same separation vector (to 20 % or 1 px, either sign).  Pairs found on scan
noise, contamination or a column the Gaussian does not fit point in random directions."""
PAIR_AMPLITUDE_RANGE = (0.3, 3.0)
"""A second column's fitted amplitude lies within this range of the median column's: the residual of
a column the single Gaussian does not fit (probe tails, a fit moved by noise) is weaker or stronger."""
Pairs = Annotated[bool, Flag()]
"""Look for close pairs (dumbbells) the peak search's minimum distance merged (:func:`resolve_close_pairs`)."""


def _motif(vectors: np.ndarray, n_columns: int) -> np.ndarray:
    """Which separation vectors (n, 2; pixels) are shared, either sign, by :data:`PAIR_MOTIF_FRACTION` of the columns."""
    if len(vectors) == 0:
        return np.zeros(0, bool)
    both = cKDTree(np.vstack([vectors, -vectors]))
    tol = np.maximum(1.0, 0.2 * np.hypot(vectors[:, 0], vectors[:, 1]))
    counts = np.array([len({j % len(vectors) for j in near}) for near in both.query_ball_point(vectors, tol)])
    return counts >= max(3, PAIR_MOTIF_FRACTION * n_columns)


def resolve_close_pairs(image, table: pd.DataFrame, spacing_px, false_alarm_rate=0.001) -> pd.DataFrame:
    """Add the second column of close pairs that the peak search merged, refitting each pair jointly.

    The peak search keeps one maximum within half a spacing (so a noise maximum
    on a column's flank is not a column), which merges columns closer than that:
    Si [110] dumbbells 1.36 Å apart, GaAs, CdTe.  Here the fitted columns of
    ``table`` (``x, y, score, sigma`` of :func:`refine_peaks`) are subtracted
    from the image (:func:`atomloc.core.image.render_columns`, DAOPHOT's
    find-subtract-find); a maximum of the residual that stands out of the
    image's noise at ``false_alarm_rate`` (:func:`find_peaks`' rule; every
    residual maximum lies next to a column, so without the neighbours' lenient rate) between
    :data:`PAIR_MIN_DISTANCE_SIGMA` column sigmas and half a spacing from its
    nearest column is a second column.  Each such pair (one per column, the
    strongest) is refitted as two overlapping Gaussians of one sigma
    (:func:`atomloc.locate.refine.fit_gaussian_pairs`); pairs whose joint fit
    fails, whose second Gaussian's amplitude lies outside
    :data:`PAIR_AMPLITUDE_RANGE` of the median column's, or whose separation
    vector is not a motif of the lattice (:data:`PAIR_MOTIF_FRACTION`), keep
    the first column alone.

    Returns
    -------
    DataFrame
        ``table`` with the pairs' columns refitted and their second columns added.
    """
    if len(table) < 2 or "sigma" not in table:
        return table
    image = np.asarray(image, dtype=np.float64)
    xy = table[["x", "y"]].to_numpy(dtype=np.float64)
    sigma = float(np.median(table["sigma"]))
    min_sep = PAIR_MIN_DISTANCE_SIGMA * sigma
    if min_sep >= 0.5 * spacing_px:
        return table  # columns too wide for a resolvable pair inside half a spacing
    residual = image - render_columns(image.shape, xy[:, 0], xy[:, 1], table["score"].to_numpy(),
                                      table["sigma"].to_numpy())
    # every residual maximum lies next to a column: the neighbours' lenient rate would let noise through
    found = find_peaks(residual, spacing_px, min_distance_px=max(1.0, min_sep), false_alarm_rate=false_alarm_rate,
                       neighbour_false_alarm_rate=false_alarm_rate)
    if len(found) == 0:
        return table
    second = found[:, ::-1].astype(np.float64)
    distance, nearest = cKDTree(xy).query(second)
    close = (distance >= min_sep) & (distance < 0.5 * spacing_px)
    # one second column per column: the first found (find_peaks lists the highest first)
    _, first = np.unique(nearest[close], return_index=True)
    pick = np.nonzero(close)[0][first]
    if len(pick) == 0:
        return table
    partner = nearest[pick]
    xy1, xy2, amps, sig, ok = fit_gaussian_pairs(image, xy[partner], second[pick], sigma)
    typical = float(np.median(table["score"]))
    ok &= (amps[:, 1] >= PAIR_AMPLITUDE_RANGE[0] * typical) & (amps[:, 1] <= PAIR_AMPLITUDE_RANGE[1] * typical)
    ok[ok] = _motif(xy2[ok] - xy1[ok], len(table))
    if not ok.any():
        return table
    out = table.copy()
    rows = partner[ok]
    out.loc[out.index[rows], ["x", "y"]] = xy1[ok]
    out.loc[out.index[rows], "score"] = amps[ok, 0]
    out.loc[out.index[rows], "sigma"] = sig[ok]
    added = out.iloc[rows].copy()
    added[["x", "y"]] = xy2[ok]
    added["score"] = amps[ok, 1]
    return pd.concat([out, added], ignore_index=True)


@register("gaussfit",
          "Local maxima of the smoothed, background-subtracted image that stand out of the noise at a "
          "false-alarm rate (minimum distance from the spacing), each refined by a batched 2-D Gaussian fit; "
          "failed fits are dropped; close pairs (dumbbells) found in the image minus the fitted columns are "
          "refitted jointly.")
def gaussfit(image, spacing_px=AUTO, *, smooth_sigma_px: AutoPx = AUTO, min_distance_px: AutoDistance = AUTO,
             false_alarm_rate: FalseAlarms = 0.001, neighbour_false_alarm_rate: FalseAlarms = 0.1,
             threshold_rel: NonNegative = 0.0, fit_radius_px: AutoPx = AUTO, pairs: Pairs = True):
    """Local maxima (:func:`find_peaks`) + 2-D Gaussian refinement (:func:`atomloc.locate.refine.fit_gaussians`).

    ``false_alarm_rate``, ``neighbour_false_alarm_rate``: the two noise
    thresholds of :func:`find_peaks` (expected detections on pure noise, as a
    fraction of the columns); ``threshold_rel`` an optional extra cut relative
    to the brightest columns.  ``fit_radius_px`` auto = 0.4 x spacing (at least 2 px):
    the fitted disc stays clear of the neighbouring columns.  ``pairs``: add the
    second column of close pairs (dumbbells) closer than the peak search's
    minimum distance, each pair refitted jointly (:func:`resolve_close_pairs`).
    """
    peaks = find_peaks(image, spacing_px, smooth_sigma_px, min_distance_px, false_alarm_rate,
                       neighbour_false_alarm_rate, threshold_rel)
    radius = _positive("fit_radius_px", _auto(fit_radius_px, max(2.0, 0.4 * spacing_px)))
    table = refine_peaks(image, peaks, radius, sigma_px=max(0.5, 0.2 * spacing_px))
    return resolve_close_pairs(image, table, spacing_px, false_alarm_rate) if pairs else table


@register("findfoci",
          "FindFoci (Herbert et al. 2014; implemented in atomloc.locate.findfoci): blur, background level, "
          "region growing from the brightest pixel down, saddle analysis, merging by height above the "
          "saddle and by size; centre by maximum, centre of mass or Gaussian fit.")
def findfoci(image, spacing_px=AUTO, *, blur_sigma_px: Annotated[float | str, Real(ge=0, auto=True)] = AUTO,
             background_method: Annotated[str, Choice(*BACKGROUND_METHODS)] = "absolute",
             background_param: Annotated[float | str, Real(auto=True)] = AUTO,
             search_method: Annotated[str, Choice(*SEARCH_METHODS)] = "above_background",
             search_param: NonNegative = 0.0,
             peak_method: Annotated[str, Choice(*PEAK_METHODS)] = "relative_above_background",
             peak_param: AutoNonNegative = AUTO, min_size_px: AutoCount = AUTO,
             centre_method: Annotated[str, Choice(*CENTRE_METHODS)] = "com", fit_radius_px: AutoPx = AUTO,
             preset: Preset = "noise", false_alarm_rate: FalseAlarms = 0.001,
             neighbour_false_alarm_rate: FalseAlarms = 0.1):
    """FindFoci on the image scaled so that its 0.5 / 99.5 percentiles are 0 / 1.

    The study's settings (absolute background 0.1-0.3 of the range, blur
    0.8-2 px, minimum size 10 px at spacings near 10 px) become, scaled by the
    spacing: ``blur_sigma_px`` auto = 0.12 x spacing, ``min_size_px`` auto =
    0.1 x spacing^2 (at least 3 px); ``background_param`` and ``peak_param``
    auto: :data:`FINDFOCI_PARAMS` for the preset.  ``centre_method="gaussian"`` refines each
    maximum by the batched 2-D Gaussian fit over a disc of ``fit_radius_px``
    (auto 0.4 x spacing); failed fits are dropped.  See
    :func:`atomloc.locate.findfoci.find_foci` for the other parameters.
    ``preset="noise"`` (default) runs on the image without its background
    (the level between columns, at the spacing's scale) and keeps the
    detections that stand out of the image's noise (:func:`noise_filter`, with
    ``false_alarm_rate`` and ``neighbour_false_alarm_rate``);
    ``preset="study"`` runs on the raw image alone, as the AtomID-net study did.
    """
    blur = _auto(blur_sigma_px, 0.12 * spacing_px)
    background_param = _auto(background_param, FINDFOCI_PARAMS[preset]["background_param"])
    peak_param = _auto(peak_param, FINDFOCI_PARAMS[preset]["peak_param"])
    min_size = _auto(min_size_px, max(3, int(round(0.1 * spacing_px ** 2))))
    foci = find_foci(normalise(_prepare(image, spacing_px, preset)), blur_sigma_px=float(blur), background_method=background_method,
                     background_param=float(background_param), search_method=search_method,
                     search_param=float(search_param), peak_method=peak_method, peak_param=float(peak_param),
                     min_size_px=int(min_size), centre_method=centre_method)
    foci = _finish(image, foci[["x", "y", "score"]], spacing_px, preset, false_alarm_rate,
                   neighbour_false_alarm_rate)
    if centre_method != "gaussian":
        return foci
    radius = _positive("fit_radius_px", _auto(fit_radius_px, max(2.0, 0.4 * spacing_px)))
    peaks = np.rint(foci[["y", "x"]].to_numpy()).astype(int).reshape(-1, 2)
    return refine_peaks(image, peaks, radius, sigma_px=max(0.5, 0.2 * spacing_px))


def gaussian_psf(sigma_px: float) -> np.ndarray:
    """A normalised, odd-sized 2-D Gaussian kernel of standard deviation ``sigma_px`` (pixels), +-4 sigma."""
    r = max(1, int(np.ceil(4 * sigma_px)))
    ax = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (ax / sigma_px) ** 2)
    psf = np.outer(g, g)
    return psf / psf.sum()


def column_sigma(image, spacing_px) -> float:
    """Median Gaussian sigma (pixels) of the columns found by :func:`gaussfit`, or NaN if none fits."""
    fits = gaussfit(image, spacing_px)
    return float(np.median(fits["sigma"])) if len(fits) else float("nan")


def deconvolve(image: np.ndarray, psf_sigma_px: float, num_iter: int) -> np.ndarray:
    """Richardson-Lucy deconvolution with a Gaussian PSF (``skimage.restoration.richardson_lucy``, clip=False).

    The image is shifted to be non-negative (RL assumes counts) and padded by
    reflection over the PSF's reach so the borders do not darken.

    References
    ----------
    .. [1] W. H. Richardson, "Bayesian-based iterative method of image restoration",
       J. Opt. Soc. Am. 62, 55-59 (1972).
    .. [2] L. B. Lucy, "An iterative technique for the rectification of observed
       distributions", Astron. J. 79, 745-754 (1974).
    """
    psf = gaussian_psf(psf_sigma_px)
    pad = psf.shape[0] // 2
    img = np.pad(image - image.min() + 1e-6 * (np.ptp(image) or 1.0), pad, mode="reflect")
    # imported here: skimage.restoration imports scipy.signal (0.6 s of every process that imports atomloc.locate)
    from skimage.restoration import richardson_lucy

    out = richardson_lucy(img, psf, num_iter=int(num_iter), clip=False)
    return out[pad:-pad, pad:-pad]


def column_psf_sigma(image, spacing_px, psf_frac=0.7, **detection) -> float | None:
    """The Gaussian PSF sigma (pixels) Richardson-Lucy deconvolves with: ``psf_frac`` x the median column
    sigma :func:`gaussfit` (``detection`` parameters, no pairs) measures; None where it finds no column."""
    first = gaussfit(image, spacing_px, **{**detection, "pairs": False})
    if len(first) == 0:
        return None
    return float(psf_frac) * float(np.median(first["sigma"]))


@register("rl_gaussfit",
          "Richardson-Lucy deconvolution (skimage, clip=False) with a Gaussian PSF of the measured "
          "column width (or psf_sigma_px), then local maxima + batched 2-D Gaussian refinement on the "
          "deconvolved image.")
def rl_gaussfit(image, spacing_px=AUTO, *, psf_sigma_px: AutoPx = AUTO, psf_frac: Annotated[float, Real(gt=0)] = 0.7,
                num_iter: Annotated[int, Int(ge=1)] = 10, smooth_sigma_px: AutoPx = AUTO,
                min_distance_px: AutoDistance = AUTO, false_alarm_rate: FalseAlarms = 0.001,
                neighbour_false_alarm_rate: FalseAlarms = 0.1, threshold_rel: NonNegative = 0.0,
                fit_radius_px: AutoPx = AUTO, pairs: Pairs = True):
    """Deconvolve, then local maxima + 2-D Gaussian refinement on the deconvolved image.

    ``psf_sigma_px`` auto = ``psf_frac`` x the median column sigma that
    :func:`gaussfit` (with the same detection parameters) measures on the raw
    image (the PSF is only part of the column width: deconvolving the whole
    width turns columns into points and amplifies noise); where it finds no
    column, none is returned.  ``num_iter`` Richardson-Lucy iterations (few: RL
    rings around bright columns as it converges).  The maxima are those of the
    deconvolved image, but whether one stands out of the noise is judged on the
    raw image (:func:`find_peaks` with ``maxima_of``): deconvolution colours the
    noise, so white-noise thresholds do not hold on the deconvolved image.
    ``pairs`` as for :func:`gaussfit`, looked for on the raw image (the
    deconvolved one rings and colours the noise): pair members carry the raw
    image's joint fit.
    """
    if AUTO == psf_sigma_px:
        psf_sigma_px = column_psf_sigma(image, spacing_px, psf_frac, smooth_sigma_px=smooth_sigma_px,
                                        min_distance_px=min_distance_px, false_alarm_rate=false_alarm_rate,
                                        neighbour_false_alarm_rate=neighbour_false_alarm_rate,
                                        threshold_rel=threshold_rel, fit_radius_px=fit_radius_px)
        if psf_sigma_px is None:  # no column stands out of the noise: nothing to measure the PSF on, nothing to find
            return pd.DataFrame({"x": [], "y": [], "score": [], "sigma": []})
    sharp = deconvolve(np.asarray(image, dtype=np.float64), float(psf_sigma_px), int(num_iter))
    peaks = find_peaks(image, spacing_px, smooth_sigma_px, min_distance_px, false_alarm_rate,
                       neighbour_false_alarm_rate, threshold_rel, maxima_of=sharp)
    radius = _positive("fit_radius_px", _auto(fit_radius_px, max(2.0, 0.4 * spacing_px)))
    table = refine_peaks(sharp, peaks, radius, sigma_px=max(0.5, 0.2 * spacing_px))
    if not pairs or len(table) < 2:
        return table
    # pairs are looked for on the raw image (the deconvolved one rings and colours the noise): the
    # columns' Gaussians there make the residual (a column whose raw fit fails is not subtracted)
    raw = fit_gaussians(image, table["x"], table["y"], radius, sigma_px=max(0.5, 0.2 * spacing_px))
    if not raw.ok.any():
        return table
    model = table.assign(score=np.where(raw.ok, raw.amplitude, 0.0),
                         sigma=np.where(raw.ok, raw.sigma, float(np.median(raw.sigma[raw.ok]))))
    paired = resolve_close_pairs(image, model, spacing_px, false_alarm_rate)
    n = len(table)
    kept = np.nonzero((paired["x"].to_numpy()[:n] == table["x"].to_numpy())
                      & (paired["y"].to_numpy()[:n] == table["y"].to_numpy()))[0]
    paired.loc[kept, ["score", "sigma"]] = table[["score", "sigma"]].to_numpy()[kept]
    return paired
