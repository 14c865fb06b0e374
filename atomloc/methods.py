"""The registry of column-locating methods.

A method is a function ``locate(image, spacing_px, **params) -> DataFrame`` with
columns ``x, y`` (pixels; x = column index, centre of pixel (0, 0) at (0, 0))
and optional ``score, sigma``, registered under a name with its default
parameters.  The value ``"auto"`` means "derived from the estimated
nearest-neighbour spacing" (:func:`atomloc.spacing.estimate_spacing`), so every
method runs untuned on spacings from about 4 to 40 pixels.

Add a method by decorating its function with :func:`register` and listing its
name under ``methods:`` in ``config.yaml``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.feature import blob_log, peak_local_max
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops_table

from atomloc.errors import AtomlocInputError
from atomloc.io import validate_image
from atomloc.refine import fit_gaussians
from atomloc.spacing import estimate_spacing

AUTO = "auto"


@dataclass(frozen=True)
class Method:
    """A registered locate function and its default parameters."""

    name: str
    func: Callable[..., pd.DataFrame]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict:
        """Merge ``params`` over the defaults; unknown keys raise naming the method."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise AtomlocInputError(
                f"method {self.name!r}: unknown parameter(s) {unknown}; valid: {sorted(self.defaults)}")
        return {**self.defaults, **params}


_REGISTRY: dict[str, Method] = {}


def register(name: str, description: str, **defaults):
    """Register ``func`` as method ``name`` with default parameters.

    Every method also takes ``spacing_px`` (default ``"auto"``).
    """
    def decorator(func):
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is already registered")
        sig = inspect.signature(func)
        missing = [k for k in ("spacing_px", *defaults) if k not in sig.parameters]
        if missing:
            raise TypeError(f"{func.__name__} lacks parameters {missing}")
        _REGISTRY[name] = Method(name, func, {"spacing_px": AUTO, **defaults}, description)
        return func

    return decorator


def get_method(name: str) -> Method:
    """Return the registered method ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AtomlocInputError(
            f"method {name!r} is not registered; available: {', '.join(available_methods())}") from None


def available_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return sorted(_REGISTRY)


def locate(image: np.ndarray, method: str, pixel_size_pm: float | None = None, name: str = "image",
           **params) -> pd.DataFrame:
    """Locate atom columns in ``image`` with a registered method.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Grey image, any units; checked by :func:`atomloc.io.validate_image`.
    method : str
        Registered method name (see :func:`available_methods`).
    pixel_size_pm : float, optional
        Pixel size in pm; recorded only (all method parameters are in pixels).
    name : str
        File or image name used in error messages.
    **params
        Method parameters overriding the defaults; ``"auto"`` values are derived
        from the estimated spacing.

    Returns
    -------
    DataFrame
        Columns ``x, y`` in pixels and, per method, ``score`` and ``sigma``.
    """
    m = get_method(method)
    resolved = m.resolve(params)
    image = validate_image(image, name)
    if pixel_size_pm is not None and not pixel_size_pm > 0:
        raise AtomlocInputError(f"{name}: pixel_size_pm must be > 0 (got {pixel_size_pm})")
    if resolved["spacing_px"] == AUTO:
        resolved["spacing_px"] = estimate_spacing(image, name=name)
    elif not float(resolved["spacing_px"]) > 0:
        raise AtomlocInputError(f"method {method!r}: spacing_px must be > 0 (got {resolved['spacing_px']})")
    out = m.func(image, **resolved)
    return out.reset_index(drop=True)


def _auto(value, default):
    return default if value == AUTO else value


def normalise(image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Scale an image so that its ``low_pct`` / ``high_pct`` percentiles map to 0 / 1."""
    lo, hi = np.percentile(image, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = image.min(), image.max()
    return (image - lo) / (hi - lo)


def _positive(name, value):
    if not value > 0:
        raise AtomlocInputError(f"parameter {name} must be > 0 (got {value})")
    return value


@register("threshold_centroid",
          "Gaussian smoothing, global threshold (Otsu or fixed, on the image scaled to 0-1), "
          "connected components, unweighted centroid of each component.",
          smooth_sigma_px=AUTO, threshold="otsu", min_area_px=AUTO)
def threshold_centroid(image, spacing_px, smooth_sigma_px=AUTO, threshold="otsu", min_area_px=AUTO):
    """Threshold + centroid.

    ``smooth_sigma_px`` auto = 0.1 x spacing; ``min_area_px`` auto = 0.05 x
    spacing^2 (components smaller than this are noise).  ``threshold`` is
    ``"otsu"`` or a number in [0, 1] on the percentile-normalised image.
    """
    sigma = _positive("smooth_sigma_px", _auto(smooth_sigma_px, 0.1 * spacing_px))
    min_area = _auto(min_area_px, max(1.0, 0.05 * spacing_px ** 2))
    smooth = normalise(ndimage.gaussian_filter(image, sigma))
    t = threshold_otsu(smooth) if threshold == "otsu" else float(threshold)
    labels = label(smooth > t)
    props = regionprops_table(labels, intensity_image=smooth, properties=("centroid", "area", "intensity_mean"))
    df = pd.DataFrame({"x": props["centroid-1"], "y": props["centroid-0"], "score": props["intensity_mean"],
                       "area": props["area"]})
    return df[df["area"] >= min_area][["x", "y", "score"]]


@register("log",
          "scikit-image blob_log (Laplacian of Gaussian) on the image scaled to 0-1, "
          "sigmas tied to the spacing.",
          min_sigma_px=AUTO, max_sigma_px=AUTO, num_sigma=10, threshold=0.1, overlap=0.5)
def log_blobs(image, spacing_px, min_sigma_px=AUTO, max_sigma_px=AUTO, num_sigma=10, threshold=0.1, overlap=0.5):
    """Laplacian-of-Gaussian blob detection (``skimage.feature.blob_log``).

    ``min_sigma_px`` auto = 0.1 x spacing (at least 0.5 px), ``max_sigma_px``
    auto = 0.35 x spacing; ``threshold`` is blob_log's absolute threshold on the
    scale-normalised LoG of the percentile-normalised image.
    """
    min_sigma = _positive("min_sigma_px", _auto(min_sigma_px, max(0.5, 0.1 * spacing_px)))
    max_sigma = _positive("max_sigma_px", _auto(max_sigma_px, max(min_sigma, 0.35 * spacing_px)))
    img = normalise(image)
    blobs = blob_log(img, min_sigma=min_sigma, max_sigma=max_sigma, num_sigma=int(num_sigma),
                     threshold=float(threshold), overlap=float(overlap), exclude_border=False)
    blobs = blobs.reshape(-1, 3)
    smooth = ndimage.gaussian_filter(img, min_sigma)
    score = smooth[blobs[:, 0].astype(int), blobs[:, 1].astype(int)] if len(blobs) else np.zeros(0)
    return pd.DataFrame({"x": blobs[:, 1], "y": blobs[:, 0], "score": score, "sigma": blobs[:, 2]})


def find_peaks(image, spacing_px, smooth_sigma_px=AUTO, min_distance_px=AUTO, threshold_rel=0.1):
    """Local maxima of the smoothed, background-subtracted image.

    The background is a minimum filter over a (2 x spacing)-wide window,
    smoothed over one spacing; peaks lower than ``threshold_rel`` times the
    99.9th percentile of the background-subtracted image are dropped.

    Returns
    -------
    ndarray, shape (n, 2)
        Peak positions as integer (row, col) pixel indices.
    """
    sigma = _positive("smooth_sigma_px", _auto(smooth_sigma_px, max(0.5, 0.1 * spacing_px)))
    # peak_local_max compares within a square window of half-width min_distance; its corner
    # (sqrt(2) x farther) must stay clear of a brighter neighbour one spacing away.
    min_distance = int(_auto(min_distance_px, max(1, int(0.35 * spacing_px))))
    smooth = ndimage.gaussian_filter(image, sigma)
    size = max(3, int(round(2 * spacing_px)) | 1)
    background = ndimage.gaussian_filter(ndimage.minimum_filter(smooth, size=size, mode="reflect"), spacing_px)
    signal = smooth - background
    top = np.percentile(signal, 99.9)
    return peak_local_max(signal, min_distance=min_distance, threshold_abs=float(threshold_rel) * top,
                          exclude_border=False)


@register("peaks_gaussfit",
          "Local maxima of the smoothed, background-subtracted image (minimum distance from the "
          "spacing), each refined by a batched 2-D Gaussian fit; failed fits are dropped.",
          smooth_sigma_px=AUTO, min_distance_px=AUTO, threshold_rel=0.1, fit_radius_px=AUTO)
def peaks_gaussfit(image, spacing_px, smooth_sigma_px=AUTO, min_distance_px=AUTO, threshold_rel=0.1,
                   fit_radius_px=AUTO):
    """Local maxima + 2-D Gaussian refinement (:func:`atomloc.refine.fit_gaussians`).

    ``fit_radius_px`` auto = 0.4 x spacing (at least 2 px): the fitted disc
    stays clear of the neighbouring columns.
    """
    peaks = find_peaks(image, spacing_px, smooth_sigma_px, min_distance_px, threshold_rel)
    radius = _positive("fit_radius_px", _auto(fit_radius_px, max(2.0, 0.4 * spacing_px)))
    return _refine_peaks(image, peaks, radius, sigma_px=max(0.5, 0.2 * spacing_px))


def _refine_peaks(image, peaks, radius_px, sigma_px) -> pd.DataFrame:
    """Gaussian-refine integer peaks (row, col); failed fits are dropped.

    A first pass fits the sigma of every column; columns whose free fit fails
    (typically low-count ones) are fitted again with sigma fixed at the median
    of the successful fits.
    """
    fit = fit_gaussians(image, peaks[:, 1], peaks[:, 0], radius_px=radius_px, sigma_px=sigma_px,
                        max_shift_px=0.5 * radius_px)
    cols = {"x": fit.x, "y": fit.y, "score": fit.amplitude, "sigma": fit.sigma}
    ok = fit.ok.copy()
    if ok.any() and not ok.all():
        redo = ~ok
        refit = fit_gaussians(image, peaks[redo, 1], peaks[redo, 0], radius_px=radius_px,
                              sigma_px=float(np.median(fit.sigma[ok])), max_shift_px=0.5 * radius_px, fix_sigma=True)
        for key, values in (("x", refit.x), ("y", refit.y), ("score", refit.amplitude), ("sigma", refit.sigma)):
            cols[key] = cols[key].copy()
            cols[key][redo] = values
        ok[redo] = refit.ok
    return pd.DataFrame({k: v[ok] for k, v in cols.items()})
