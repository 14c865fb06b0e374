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

import importlib
import importlib.util
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.feature import blob_dog, blob_doh, blob_log, peak_local_max
from skimage.filters import threshold_otsu
from skimage.measure import label
from skimage.restoration import richardson_lucy

from atomloc.errors import AtomlocInputError, MissingDependencyError
from atomloc.findfoci import find_foci
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
    requires: tuple[str, ...] = ()
    extra: str = ""
    imports: tuple[str, ...] = ()
    needs_spacing: bool = True

    def missing(self) -> list[str]:
        """Importable modules this method needs that are not installed."""
        return [mod for mod in self.requires if importlib.util.find_spec(mod) is None]

    def load(self) -> None:
        """Import the method's heavy optional modules now, so that a timed call excludes their import."""
        self.check_installed()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for module in self.imports:
                importlib.import_module(module)

    def check_installed(self) -> None:
        """Raise :class:`MissingDependencyError` naming how to install what is missing."""
        missing = self.missing()
        if missing:
            hint = f"pip install 'atomloc[{self.extra}]'" if self.extra else f"pip install {' '.join(missing)}"
            raise MissingDependencyError(
                f"method {self.name!r} needs {', '.join(missing)}, which is not installed; install it with: {hint}")

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict:
        """Merge ``params`` over the defaults; unknown keys raise naming the method."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise AtomlocInputError(
                f"method {self.name!r}: unknown parameter(s) {unknown}; valid: {sorted(self.defaults)}")
        return {**self.defaults, **params}


_REGISTRY: dict[str, Method] = {}


def register(name: str, description: str, requires: tuple[str, ...] = (), extra: str = "",
             imports: tuple[str, ...] = (), needs_spacing: bool = True, **defaults):
    """Register ``func`` as method ``name`` with default parameters.

    Every method also takes ``spacing_px`` (default ``"auto"``).  ``requires``
    lists the optional top-level packages the method needs (checked without
    importing them), ``extra`` the package extra that installs them and
    ``imports`` the modules it imports when it runs (see :meth:`Method.load`).
    With ``needs_spacing=False`` an ``"auto"`` spacing is passed on as
    ``"auto"`` (the method finds its own) instead of being estimated first.
    """
    def decorator(func):
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is already registered")
        sig = inspect.signature(func)
        missing = [k for k in ("spacing_px", *defaults) if k not in sig.parameters]
        if missing:
            raise TypeError(f"{func.__name__} lacks parameters {missing}")
        _REGISTRY[name] = Method(name, func, {"spacing_px": AUTO, **defaults}, description, tuple(requires), extra,
                                 tuple(imports), needs_spacing)
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
    m.check_installed()
    image = validate_image(image, name)
    if pixel_size_pm is not None and not pixel_size_pm > 0:
        raise AtomlocInputError(f"{name}: pixel_size_pm must be > 0 (got {pixel_size_pm})")
    if resolved["spacing_px"] == AUTO:
        if m.needs_spacing:
            resolved["spacing_px"] = estimate_spacing(image, name=name)
    elif not float(resolved["spacing_px"]) > 0:
        raise AtomlocInputError(f"method {method!r}: spacing_px must be > 0 (got {resolved['spacing_px']})")
    out = m.func(image, **resolved)
    return out.reset_index(drop=True)


def locate_series(frames: np.ndarray, method: str, pixel_size_pm: float | None = None, name: str = "series",
                  **params) -> tuple[pd.DataFrame, list[float]]:
    """Locate atom columns in every frame of a series with one method.

    Parameters
    ----------
    frames : ndarray, shape (n, H, W)
        The frames.
    method, pixel_size_pm, **params
        As for :func:`locate`.
    name : str
        Series name used in error messages (``"<name>[frame k]"``).

    Returns
    -------
    positions : DataFrame
        ``frame`` (int) followed by the columns :func:`locate` returns, frames in order.
    seconds : list of float
        Wall-clock seconds spent in :func:`locate` for each frame.
    """
    import time

    tables, seconds = [], []
    for k, image in enumerate(frames):
        t0 = time.perf_counter()
        table = locate(image, method, pixel_size_pm=pixel_size_pm, name=f"{name}[frame {k}]", **params)
        seconds.append(time.perf_counter() - t0)
        table.insert(0, "frame", k)
        tables.append(table)
    return pd.concat(tables, ignore_index=True), seconds


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


def _threshold_regions(image, spacing_px, smooth_sigma_px, threshold, min_area_px):
    """Smooth, scale to 0-1, threshold; return the label image, the smoothed image and the threshold."""
    sigma = _positive("smooth_sigma_px", _auto(smooth_sigma_px, 0.1 * spacing_px))
    min_area = _auto(min_area_px, max(1.0, 0.05 * spacing_px ** 2))
    smooth = normalise(ndimage.gaussian_filter(image, sigma))
    t = threshold_otsu(smooth) if threshold == "otsu" else float(threshold)
    labels = label(smooth > t)
    area = np.bincount(labels.ravel())
    small = area < min_area
    small[0] = True
    labels[small[labels]] = 0
    return labels, smooth, t


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
          "connected components, unweighted centroid of each component.",
          smooth_sigma_px=AUTO, threshold="otsu", min_area_px=AUTO)
def threshold_centroid(image, spacing_px, smooth_sigma_px=AUTO, threshold="otsu", min_area_px=AUTO):
    """Threshold + plain centroid of each connected component.

    ``smooth_sigma_px`` auto = 0.1 x spacing; ``min_area_px`` auto = 0.05 x
    spacing^2 (components smaller than this are noise).  ``threshold`` is
    ``"otsu"`` or a number in [0, 1] on the percentile-normalised image.
    """
    labels, smooth, _ = _threshold_regions(image, spacing_px, smooth_sigma_px, threshold, min_area_px)
    return _components_table(labels, np.ones_like(smooth), smooth)


@register("threshold_wcentroid",
          "As threshold_centroid, but each component's centre is its intensity-weighted centroid "
          "(weights: smoothed intensity above the threshold).",
          smooth_sigma_px=AUTO, threshold="otsu", min_area_px=AUTO)
def threshold_wcentroid(image, spacing_px, smooth_sigma_px=AUTO, threshold="otsu", min_area_px=AUTO):
    """Threshold + intensity-weighted centroid of each connected component.

    The weights are the smoothed intensity above the threshold, so the pedestal
    does not pull the centre to the component's geometric centre.  Parameters
    as :func:`threshold_centroid`.
    """
    labels, smooth, t = _threshold_regions(image, spacing_px, smooth_sigma_px, threshold, min_area_px)
    return _components_table(labels, np.clip(smooth - t, 0.0, None), smooth)


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
          "max_sigma = sqrt(spacing) capped at 10, threshold 0.1 (the AtomID-net study's settings).",
          min_sigma_px=AUTO, max_sigma_px=AUTO, num_sigma=10, threshold=0.1, overlap=0.5)
def log_blobs(image, spacing_px, min_sigma_px=AUTO, max_sigma_px=AUTO, num_sigma=10, threshold=0.1, overlap=0.5):
    """Laplacian-of-Gaussian blobs (``skimage.feature.blob_log``).

    Runs on the image scaled so that its 0.5 / 99.5 percentiles are 0 / 1.
    ``min_sigma_px`` / ``max_sigma_px`` auto: :func:`blob_sigma_range`.
    Positions are whole pixels (the scale-space maximum); blobs darker than
    their surroundings (e.g. the empty hexagon centres of MX2) are dropped.
    """
    return _detect_blobs(blob_log, image, spacing_px, min_sigma_px, max_sigma_px, num_sigma=int(num_sigma),
                         threshold=float(threshold), overlap=float(overlap), exclude_border=False)


@register("dog",
          "scikit-image blob_dog (difference of Gaussians) on the image scaled to 0-1; "
          "max_sigma = sqrt(spacing) capped at 10, threshold 0.1 (the AtomID-net study's settings).",
          min_sigma_px=AUTO, max_sigma_px=AUTO, sigma_ratio=1.6, threshold=0.1, overlap=0.5)
def dog_blobs(image, spacing_px, min_sigma_px=AUTO, max_sigma_px=AUTO, sigma_ratio=1.6, threshold=0.1, overlap=0.5):
    """Difference-of-Gaussian blobs (``skimage.feature.blob_dog``).

    Runs on the image scaled so that its 0.5 / 99.5 percentiles are 0 / 1.
    ``min_sigma_px`` / ``max_sigma_px`` auto: :func:`blob_sigma_range`.
    Positions are whole pixels (the scale-space maximum); blobs darker than
    their surroundings (e.g. the empty hexagon centres of MX2) are dropped.
    """
    if not float(sigma_ratio) > 1:
        raise AtomlocInputError(f"parameter sigma_ratio must be > 1 (got {sigma_ratio})")
    return _detect_blobs(blob_dog, image, spacing_px, min_sigma_px, max_sigma_px, sigma_ratio=float(sigma_ratio),
                         threshold=float(threshold), overlap=float(overlap), exclude_border=False)


@register("doh",
          "scikit-image blob_doh (determinant of Hessian) on the image scaled to 0-1; "
          "max_sigma = sqrt(spacing) capped at 10, threshold 0.004 (the AtomID-net study's settings).",
          min_sigma_px=AUTO, max_sigma_px=AUTO, num_sigma=10, threshold=0.004, overlap=0.5)
def doh_blobs(image, spacing_px, min_sigma_px=AUTO, max_sigma_px=AUTO, num_sigma=10, threshold=0.004, overlap=0.5):
    """Determinant-of-Hessian blobs (``skimage.feature.blob_doh``).

    The determinant is positive for bright and dark blobs alike, so the sign
    of the Laplacian keeps the bright ones.  scikit-image approximates the
    Hessian with box filters on the integral image; on round columns its
    positions sit about 1 px up and left of the centre (measured here, kept
    as it is: this method is scikit-image's detector).

    Runs on the image scaled so that its 0.5 / 99.5 percentiles are 0 / 1.
    ``min_sigma_px`` / ``max_sigma_px`` auto: :func:`blob_sigma_range`.
    Positions are whole pixels (the scale-space maximum); blobs darker than
    their surroundings (e.g. the empty hexagon centres of MX2) are dropped.
    """
    return _detect_blobs(blob_doh, image, spacing_px, min_sigma_px, max_sigma_px, num_sigma=int(num_sigma),
                         threshold=float(threshold), overlap=float(overlap))


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


@register("gaussfit",
          "Local maxima of the smoothed, background-subtracted image (minimum distance from the "
          "spacing), each refined by a batched 2-D Gaussian fit; failed fits are dropped.",
          smooth_sigma_px=AUTO, min_distance_px=AUTO, threshold_rel=0.1, fit_radius_px=AUTO)
def gaussfit(image, spacing_px, smooth_sigma_px=AUTO, min_distance_px=AUTO, threshold_rel=0.1,
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


@register("findfoci",
          "FindFoci (Herbert et al. 2014; implemented in atomloc.findfoci): blur, background level, "
          "region growing from the brightest pixel down, saddle analysis, merging by height above the "
          "saddle and by size; centre by maximum, centre of mass or Gaussian fit.",
          blur_sigma_px=AUTO, background_method="absolute", background_param=0.1,
          search_method="above_background", search_param=0.0, peak_method="relative_above_background",
          peak_param=0.3, min_size_px=AUTO, centre_method="com", fit_radius_px=AUTO)
def findfoci(image, spacing_px, blur_sigma_px=AUTO, background_method="absolute", background_param=0.1,
             search_method="above_background", search_param=0.0, peak_method="relative_above_background",
             peak_param=0.3, min_size_px=AUTO, centre_method="com", fit_radius_px=AUTO):
    """FindFoci on the image scaled so that its 0.5 / 99.5 percentiles are 0 / 1.

    The study's settings (absolute background 0.1-0.3 of the range, blur
    0.8-2 px, minimum size 10 px at spacings near 10 px) become, scaled by the
    spacing: ``blur_sigma_px`` auto = 0.12 x spacing, ``min_size_px`` auto =
    0.1 x spacing^2 (at least 3 px).  ``centre_method="gaussian"`` refines each
    maximum by the batched 2-D Gaussian fit over a disc of ``fit_radius_px``
    (auto 0.4 x spacing); failed fits are dropped.  See
    :func:`atomloc.findfoci.find_foci` for the other parameters.
    """
    blur = _auto(blur_sigma_px, 0.12 * spacing_px)
    min_size = _auto(min_size_px, max(3, int(round(0.1 * spacing_px ** 2))))
    foci = find_foci(normalise(image), blur_sigma_px=float(blur), background_method=background_method,
                     background_param=float(background_param), search_method=search_method,
                     search_param=float(search_param), peak_method=peak_method, peak_param=float(peak_param),
                     min_size_px=int(min_size), centre_method=centre_method)
    if centre_method != "gaussian":
        return foci[["x", "y", "score"]]
    radius = _positive("fit_radius_px", _auto(fit_radius_px, max(2.0, 0.4 * spacing_px)))
    peaks = np.rint(foci[["y", "x"]].to_numpy()).astype(int).reshape(-1, 2)
    return _refine_peaks(image, peaks, radius, sigma_px=max(0.5, 0.2 * spacing_px))


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
    """
    psf = gaussian_psf(psf_sigma_px)
    pad = psf.shape[0] // 2
    img = np.pad(image - image.min() + 1e-6 * (np.ptp(image) or 1.0), pad, mode="reflect")
    out = richardson_lucy(img, psf, num_iter=int(num_iter), clip=False)
    return out[pad:-pad, pad:-pad]


@register("rl_gaussfit",
          "Richardson-Lucy deconvolution (skimage, clip=False) with a Gaussian PSF of the measured "
          "column width (or psf_sigma_px), then local maxima + batched 2-D Gaussian refinement on the "
          "deconvolved image.",
          psf_sigma_px=AUTO, psf_frac=0.7, num_iter=10, smooth_sigma_px=AUTO, min_distance_px=AUTO,
          threshold_rel=0.1, fit_radius_px=AUTO)
def rl_gaussfit(image, spacing_px, psf_sigma_px=AUTO, psf_frac=0.7, num_iter=10, smooth_sigma_px=AUTO,
                min_distance_px=AUTO, threshold_rel=0.1, fit_radius_px=AUTO):
    """Deconvolve, then :func:`gaussfit`.

    ``psf_sigma_px`` auto = ``psf_frac`` x the median column sigma that
    :func:`gaussfit` measures on the raw image (the PSF is only part of the
    column width: deconvolving the whole width turns columns into points and
    amplifies noise).  ``num_iter`` Richardson-Lucy iterations (few: RL rings
    around bright columns as it converges).
    """
    if AUTO == psf_sigma_px:
        width = column_sigma(image, spacing_px)
        if not np.isfinite(width):
            raise AtomlocInputError("rl_gaussfit: no column could be fitted to measure the PSF width; "
                                    "give psf_sigma_px")
        psf_sigma_px = float(psf_frac) * width
    _positive("psf_sigma_px", float(psf_sigma_px))
    if int(num_iter) < 1:
        raise AtomlocInputError(f"parameter num_iter must be >= 1 (got {num_iter})")
    sharp = deconvolve(np.asarray(image, dtype=np.float64), float(psf_sigma_px), int(num_iter))
    return gaussfit(sharp, spacing_px, smooth_sigma_px, min_distance_px, threshold_rel, fit_radius_px)


@register("atomap",
          "Atomap (PyPI atomap): get_atom_positions with separation 0.45 x spacing (it must stay "
          "below spacing/sqrt(2)), Sublattice, centre-of-mass then 2-D elliptical Gaussian refinement.",
          requires=("atomap", "hyperspy"), extra="atomap", imports=("atomap.api", "hyperspy.api"),
          separation_px=AUTO, threshold_rel=0.02, percent_to_nn=0.4, refine="gaussian")
def atomap_locate(image, spacing_px, separation_px=AUTO, threshold_rel=0.02, percent_to_nn=0.4, refine="gaussian"):
    """Run the real Atomap library.

    ``separation_px`` auto = 0.45 x spacing (at least 2 px): Atomap's peak
    finder (``peak_local_max``) keeps a pixel only if it is the maximum of a
    square window of half-width ``separation``, whose corner reaches sqrt(2) x
    farther, so a separation at or above spacing / sqrt(2) loses columns; and
    where columns differ in brightness (Mo and S2 in MoS2) the bright
    neighbour's tail inside the window hides the dim column already at
    0.55 x spacing.  The image is shifted to a minimum of 0 (Atomap expects
    non-negative counts).  ``refine`` is ``"gaussian"``
    (centre of mass, then Atomap's 2-D Gaussian), ``"com"`` or ``"none"``.
    Atomap's coordinates are pixel indices, like ours.
    """
    if refine not in ("gaussian", "com", "none"):
        raise AtomlocInputError(f"atomap: refine must be gaussian, com or none (got {refine!r})")
    separation = int(_auto(separation_px, max(2, int(0.45 * spacing_px))))
    if not 1 <= separation < spacing_px / np.sqrt(2):
        raise AtomlocInputError(f"atomap: separation_px must be in [1, spacing/sqrt(2) = "
                                f"{spacing_px / np.sqrt(2):.1f}) (got {separation})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import atomap.api as am
        import hyperspy.api as hs

        img = np.asarray(image, dtype=np.float64)
        img = img - img.min()
        signal = hs.signals.Signal2D(img)
        start = am.get_atom_positions(signal, separation=separation, threshold_rel=float(threshold_rel))
        if len(start) == 0:
            return pd.DataFrame({"x": [], "y": []})
        sub = am.Sublattice(start, image=img)
        if refine != "none" and len(start) > 1:
            sub.find_nearest_neighbors()
            sub.refine_atom_positions_using_center_of_mass(percent_to_nn=float(percent_to_nn),
                                                           show_progressbar=False)
            if refine == "gaussian":
                sub.refine_atom_positions_using_2d_gaussian(percent_to_nn=float(percent_to_nn),
                                                            show_progressbar=False)
        return pd.DataFrame({"x": np.asarray(sub.x_position, float), "y": np.asarray(sub.y_position, float)})


# --- learned locators (PyTorch; the implementation lives in atomloc.nets, imported when called) ---

@register("atomid",
          "AtomID-net: U-Net confidence map + global-spacing branch, max-pool proposals, boxes of the "
          "predicted spacing, greedy NMS (IoU 0.3) with a confidence lower bound; heads log/dog/doh optional.",
          imports=("torch", "atomloc.nets.locate", "atomloc.nets.models"), needs_spacing=False,
          model=AUTO, min_confidence=0.3, window_px=3, iou_threshold=0.3, head="nms", subpixel=True,
          max_tile_px=1024, device=AUTO)
def atomid(image, spacing_px, model=AUTO, min_confidence=0.3, window_px=3, iou_threshold=0.3, head="nms",
           subpixel=True, max_tile_px=1024, device=AUTO):
    """See :func:`atomloc.nets.locate.atomid_locate`; ``model`` auto = ``results/models/atomid.pt``."""
    from atomloc.nets.locate import atomid_locate

    return atomid_locate(image, spacing_px, model, min_confidence, window_px, iou_threshold, head, subpixel,
                         max_tile_px, device)


@register("atomsegnet",
          "AtomSegNet-style U-Net (modified chi-square loss) segmentation map, Otsu threshold, "
          "connected components, centroids; optional 2-D Gaussian refinement.",
          imports=("torch", "atomloc.nets.locate", "atomloc.nets.models"), needs_spacing=False,
          model=AUTO, min_area_px=2, refine="none", max_tile_px=1024, device=AUTO)
def atomsegnet(image, spacing_px, model=AUTO, min_area_px=2, refine="none", max_tile_px=1024, device=AUTO):
    """See :func:`atomloc.nets.locate.atomsegnet_locate`; ``model`` auto = ``results/models/atomsegnet.pt``."""
    from atomloc.nets.locate import atomsegnet_locate

    return atomsegnet_locate(image, spacing_px, model, min_area_px, refine, max_tile_px, device)
