"""Noise level of an image and detection thresholds set by a false-alarm rate.

Fixed thresholds on an image scaled to 0-1 fail whenever contamination,
thickness or vacuum take the intensity range, or the dose is low.  The classical
locators instead

1. estimate the pixel noise with :func:`noise_sigma` (robust to the lattice),
2. remove the slowly varying background at a scale set by the column spacing
   (:func:`peak_heights`), and
3. keep a local maximum only if its height above that background exceeds what
   pure noise of that level reaches at a chosen false-alarm rate
   (:func:`noise_height_threshold`, calibrated on a seeded white-noise image run
   through the same filters).

Coordinates: pixels, x = column index, pixel centres at integers.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft, ndimage
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max

from atomloc.core.errors import AtomlocInputError

_MAX_SIDE_PX = 2048  # the noise is estimated on a central crop at most this large


def noise_sigma(image: np.ndarray, *, min_frequency: float = 0.3) -> float:
    """Standard deviation of the white part of an image's noise, robust to the lattice.

    White noise of standard deviation sigma has a flat power spectrum, while a
    crystal lattice puts its power into isolated Bragg peaks.  The estimate is
    the median power of the Hann-windowed image over spatial frequencies from
    ``min_frequency`` to the Nyquist limit (0.5 cycles / px), leaving out the two
    axes (where the window's edges and scan-line offsets put their power),
    divided by ln 2 (the median of an exponential power) and by the window's
    energy.  The median ignores the few Bragg peaks out there, so the estimate
    holds for spacings down to about 3 px, where a high-pass in real space sees
    the columns themselves.  For Poisson noise it is the root of the mean
    variance; for noise correlated between neighbouring pixels (a filtered or
    upsampled image) it is the high-frequency part only.  Images larger than
    2048 px along a side are estimated on their central 2048 px.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Grey image, any units, at least 8 x 8.
    min_frequency : float
        Lowest spatial frequency used, cycles per pixel (below 0.5).

    Returns
    -------
    float
        Noise standard deviation in image units.

    References
    ----------
    .. [1] D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by wavelet
       shrinkage", Biometrika 81, 425-455 (1994) (the noise level from a median
       of the finest-scale coefficients, here Fourier ones).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 8:
        raise AtomlocInputError(f"noise_sigma: need a 2-D image of at least 8 x 8 pixels (got shape {image.shape})")
    if not 0 < min_frequency < 0.5:
        raise AtomlocInputError(f"noise_sigma: min_frequency must be in (0, 0.5) cycles/px (got {min_frequency})")
    h, w = image.shape
    top, left = max(0, (h - _MAX_SIDE_PX) // 2), max(0, (w - _MAX_SIDE_PX) // 2)
    image = image[top:top + _MAX_SIDE_PX, left:left + _MAX_SIDE_PX]
    h, w = image.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(fft.rfft2((image - image.mean()) * window, workers=-1)) ** 2
    ky = fft.fftfreq(h)[:, None]
    kx = fft.rfftfreq(w)[None, :]
    keep = (np.hypot(kx, ky) >= min_frequency) & (np.abs(kx) > 1.5 / w) & (np.abs(ky) > 1.5 / h)
    return float(np.sqrt(np.median(power[keep]) / np.log(2.0) / np.sum(window ** 2)))


def background_window_px(spacing_px: float) -> int:
    """Odd width (pixels) of the minimum filter that finds the background between columns: 2 x spacing."""
    return max(3, int(round(2 * spacing_px)) | 1)


def local_background(smooth: np.ndarray, *, background_width_px: int, background_sigma_px: float) -> np.ndarray:
    """The level between columns: the minimum of a (smoothed) image over a square window of
    ``background_width_px``, blurred by a Gaussian of ``background_sigma_px`` (pixels)."""
    return ndimage.gaussian_filter(ndimage.minimum_filter(smooth, size=background_width_px, mode="reflect"),
                                   background_sigma_px)


def _spacing_background_filters(spacing_px: float) -> tuple[float, int, float]:
    """The filters of :func:`spacing_background`: smoothing sigma, minimum-filter width, blur sigma (pixels)."""
    return max(0.5, spacing_px / 6.0), background_window_px(spacing_px), float(spacing_px)


def spacing_background(image: np.ndarray, spacing_px: float) -> np.ndarray:
    """The :func:`local_background` of an image for a column spacing (pixels): of the image smoothed by
    spacing / 6 (at least 0.5 px), minimum over 2 x spacing, blurred over one spacing."""
    smooth_sigma, width, blur_sigma = _spacing_background_filters(spacing_px)
    smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float64), smooth_sigma)
    return local_background(smooth, background_width_px=width, background_sigma_px=blur_sigma)


def spacing_background_reach_px(spacing_px: float) -> int:
    """How far (pixels) :func:`spacing_background` looks from a pixel: the sum of its three filters'
    radii (scipy's Gaussians reach 4 sigma), so a window this much wider gives the same background."""
    smooth_sigma, width, blur_sigma = _spacing_background_filters(spacing_px)
    return int(4.0 * smooth_sigma + 0.5) + width // 2 + int(4.0 * blur_sigma + 0.5)


def height_map(image: np.ndarray, *, smooth_sigma_px: float, background_width_px: int,
               background_sigma_px: float) -> np.ndarray:
    """The image smoothed by a Gaussian of ``smooth_sigma_px`` minus its :func:`local_background`, image units."""
    smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float64), smooth_sigma_px)
    return smooth - local_background(smooth, background_width_px=background_width_px,
                                     background_sigma_px=background_sigma_px)


def peak_heights(image: np.ndarray, *, smooth_sigma_px: float, min_distance_px: int,
                 background_width_px: int, background_sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of the smoothed image and their heights above the local background (:func:`height_map`).

    Every local maximum (3 x 3) counts, except one that has a higher maximum
    within ``min_distance_px`` (Euclidean).  Unlike ``peak_local_max``'s square
    window, this keeps a weak column whose window would reach onto the flank
    of a ten times brighter neighbour one spacing away.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    smooth_sigma_px : float
        Gaussian smoothing before the maxima are searched, pixels.
    min_distance_px : float
        A maximum with a higher one closer than this (pixels) is dropped.
    background_width_px : int
        Width of the minimum filter, pixels.
    background_sigma_px : float
        Blur of the minimum-filtered image, pixels.

    Returns
    -------
    peaks : ndarray of int, shape (n, 2)
        (row, col) of each maximum, highest first.
    heights : ndarray, shape (n,)
        Smoothed intensity minus background at each maximum, image units.
    """
    signal = height_map(image, smooth_sigma_px=smooth_sigma_px, background_width_px=background_width_px,
                        background_sigma_px=background_sigma_px)
    peaks = peak_local_max(signal, min_distance=1, exclude_border=False)
    heights = signal[peaks[:, 0], peaks[:, 1]]
    order = np.argsort(-heights, kind="stable")
    peaks, heights = peaks[order], heights[order]
    if min_distance_px > 1 and len(peaks) > 1:
        # Of two maxima closer than min_distance_px the lower goes (pairs come as i < j: j is lower).
        pairs = cKDTree(peaks).query_pairs(float(min_distance_px), output_type="ndarray")
        lower = np.zeros(len(peaks), dtype=bool)
        lower[pairs[:, 1]] = True
        peaks, heights = peaks[~lower], heights[~lower]
    return peaks, heights


TAIL_FIT_MAXIMA = 50
"""Highest calibration maxima whose tail :func:`noise_height_threshold` extrapolates for rates rarer than its highest."""

CALIBRATION_STEP = 0.02
"""Relative step to which the noise calibration's filter widths are rounded (see :func:`noise_height_threshold`)."""


def _step(value: float) -> float:
    """``value`` rounded to the nearest power of ``1 + CALIBRATION_STEP`` (0 stays 0)."""
    value = float(value)
    if value <= 0:
        return value
    base = np.log1p(CALIBRATION_STEP)
    return float(np.round(np.exp(np.round(np.log(value) / base) * base), 12))


@functools.lru_cache(maxsize=64)
def _unit_noise_heights(smooth_sigma_px: float, min_distance_px: float, background_width_px: int,
                        background_sigma_px: float, size_px: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal((size_px, size_px))
    _, heights = peak_heights(noise, smooth_sigma_px=smooth_sigma_px, min_distance_px=min_distance_px,
                              background_width_px=background_width_px, background_sigma_px=background_sigma_px)
    heights.setflags(write=False)
    return heights


def noise_height_threshold(sigma: float, spacing_px: float, *, false_alarm_rate: float, smooth_sigma_px: float,
                           min_distance_px: int, background_width_px: int, background_sigma_px: float,
                           seed: int = 0) -> float:
    """Height above background that white noise of ``sigma`` exceeds at the given false-alarm rate.

    A seeded image of unit white noise is run through :func:`peak_heights` with
    the same filters; the threshold is the height exceeded by ``false_alarm_rate``
    maxima per ``spacing_px**2`` of area (so on pure noise the detections are
    about that fraction of the columns a square lattice of this spacing has),
    times ``sigma``.  The filters are linear in the noise, so one calibration per
    filter setting serves every noise level (it is cached).  The calibration's
    filter widths are rounded to steps of :data:`CALIBRATION_STEP` (2 %) and its
    image size to 64 px, so that frames whose spacing estimates differ slightly
    (every frame of a series) share one calibration; the threshold moves by
    well under 1 % for it.  A rate rarer than one maximum in the calibration
    image (the noise gate of an image without a lattice) is reached by
    extrapolating the tail of its highest maxima (:data:`TAIL_FIT_MAXIMA`);
    on 3 x 2048^2 px of fresh noise the extrapolated heights at 0.3 and 0.1
    maxima per calibration image were within 2.5 % of the measured ones
    (spacings 4 and 8 px).

    Parameters
    ----------
    sigma : float
        Pixel noise standard deviation (:func:`noise_sigma`), image units.
    spacing_px : float
        Column spacing, pixels (sets the area per column).
    false_alarm_rate : float
        Expected false detections on pure noise, as a fraction of the columns.
    smooth_sigma_px, min_distance_px, background_width_px, background_sigma_px
        As for :func:`peak_heights`.
    seed : int
        Seed of the calibration noise.

    Returns
    -------
    float
        The height threshold, image units.
    """
    size = int(64 * round(float(np.clip(96 * spacing_px, 512, 2048)) / 64))
    heights = _unit_noise_heights(_step(smooth_sigma_px), _step(min_distance_px), int(background_width_px),
                                  _step(background_sigma_px), size, int(seed))
    n_allowed = false_alarm_rate * size ** 2 / spacing_px ** 2
    if len(heights) == 0:
        return 0.0
    if n_allowed < 1.0 and len(heights) >= TAIL_FIT_MAXIMA:
        # Rarer than the calibration's highest maximum: extrapolate its tail, log(rank) linear in the height
        # fitted to the top TAIL_FIT_MAXIMA (the Gaussian tail falls faster, so the threshold errs high).
        slope, intercept = np.polyfit(heights[:TAIL_FIT_MAXIMA], np.log(np.arange(1.0, TAIL_FIT_MAXIMA + 1)), 1)
        if slope < 0:
            return float(sigma * max((np.log(max(n_allowed, 1e-12)) - intercept) / slope, heights[0]))
    # The height exceeded by n_allowed maxima, interpolated between the sorted (descending) heights.
    k = np.clip(n_allowed - 1.0, 0.0, len(heights) - 1.0)
    lo = int(np.floor(k))
    hi = min(lo + 1, len(heights) - 1)
    unit = heights[lo] + (k - lo) * (heights[hi] - heights[lo])
    return float(sigma * unit)
