"""What real HAADF images show and the linear model alone does not: effects for the training library.

Each effect is drawn independently per image with a probability (``effects_prob`` of
:class:`atomloc.simulate.library.LibrarySpec`); each has its physical origin:

* ``thickness``: specimen thickness / tilt varying across the field: column weights
  times a smooth random field in [0.6, 1.4];
* ``contrast``: the Z-contrast exponent drawn from [1.2, 2.0] (HAADF intensity grows
  as Z^1.2-2 with the detector's inner angle), which moves the sublattice ratio;
* ``probe_tail``: the aberrated probe's tails, a fraction 5-30 % of the column signal
  in a Gaussian 3-6 x wider than the core;
* ``astigmatism``: residual two-fold astigmatism, an elliptical blur of 0.3-1 x the
  probe sigma along a random direction;
* ``flyback``: fly-back distortion at the start of each fast-scan line,
  ``x -> x + a exp(-x / tau)`` (a = 1-4 px, tau = 5-20 px); labels move with the columns;
* ``vacuum``: holes in the specimen (5-30 % of the field): no columns, no film, only
  the detector's dark level; labels inside are dropped;
* ``film``: amorphous-carbon contamination, a random projected carbon film of
  0.2-1 atoms/Å² (never labelled);
* ``scanlines``: per-line offsets (2-10 % of the peak) and gain jumps (probability
  0.5 % per line, x0.8-1.25 for the rest of the frame);
* ``detector``: Poisson counts times a gain of 0.3-5 counts per electron plus an
  offset of 0-100 counts and Gaussian read noise of 0-5 counts;
* ``quantise``: 8-bit export, linear between two percentiles (0-0.5 and 99.5-100)
  with saturation outside, rounded.

References
----------
.. [1] R. Lin et al., Sci. Rep. 11, 5386 (2021): TEMImageNet's noise and background
   models (see :func:`atomloc.locate.learned.atomsegnet_locate`).
.. [2] L. Jones, P. D. Nellist, "Identifying and correcting scan noise and drift in the
   scanning transmission electron microscope", Microsc. Microanal. 19, 1050 (2013).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

EFFECTS = ("thickness", "contrast", "probe_tail", "astigmatism", "flyback", "vacuum", "film", "scanlines",
           "detector", "quantise")
"""Effects drawn by :func:`draw_effects`, in the order they act."""


def draw_effects(probability: float, rng: np.random.Generator) -> dict:
    """Which effects act on one image, and their random parameters ({} when ``probability`` is 0).

    Parameters are drawn whether or not an effect acts, so the draw of each effect
    does not depend on the others.
    """
    if probability <= 0:
        return {}
    on = rng.uniform(size=len(EFFECTS)) < probability
    params = {
        "thickness": {"amplitude": rng.uniform(0.1, 0.4)},
        "contrast": {"z_exponent": rng.uniform(1.2, 2.0)},
        "probe_tail": {"fraction": rng.uniform(0.05, 0.3), "width": rng.uniform(3.0, 6.0)},
        "astigmatism": {"extra": rng.uniform(0.3, 1.0), "angle_rad": rng.uniform(0, np.pi)},
        "flyback": {"amplitude_px": rng.uniform(1.0, 4.0), "decay_px": rng.uniform(5.0, 20.0)},
        "vacuum": {"fraction": rng.uniform(0.05, 0.3)},
        "film": {"density_per_A2": rng.uniform(0.2, 1.0)},
        "scanlines": {"offset_frac": rng.uniform(0.02, 0.1), "jump_prob": 0.005},
        "detector": {"gain": float(np.exp(rng.uniform(np.log(0.3), np.log(5.0)))), "offset": rng.uniform(0, 100),
                     "read_noise": rng.uniform(0, 5)},
        "quantise": {"low_pct": rng.uniform(0, 0.5), "high_pct": rng.uniform(99.5, 100.0)},
    }
    return {name: params[name] for name, flag in zip(EFFECTS, on) if flag}


def smooth_field(shape, rng: np.random.Generator, scale_px: float) -> np.ndarray:
    """A smooth random field in [-1, 1] with correlation length ``scale_px``."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=scale_px, mode="wrap")
    return 2 * (field - field.min()) / max(float(np.ptp(field)), 1e-12) - 1


def flyback(xy_px: np.ndarray, amplitude_px: float, decay_px: float) -> np.ndarray:
    """Positions after fly-back distortion ``x -> x + a exp(-max(x, 0) / tau)`` (pixels)."""
    out = np.array(xy_px, dtype=np.float64)
    out[:, 0] += amplitude_px * np.exp(-np.clip(out[:, 0], 0, None) / decay_px)
    return out


def vacuum_mask(shape, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of vacuum (True), smooth-edged holes covering about ``fraction`` of the field."""
    field = smooth_field(shape, rng, max(shape) / 6)
    return field > np.quantile(field, 1 - fraction)


def elliptical_blur(image: np.ndarray, sigma_px: float, angle_rad: float) -> np.ndarray:
    """Blur by a 1-D Gaussian of ``sigma_px`` along direction ``angle_rad`` (from +x), same shape."""
    r = int(np.ceil(4 * sigma_px)) + 1
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    along = xx * np.cos(angle_rad) + yy * np.sin(angle_rad)
    across = -xx * np.sin(angle_rad) + yy * np.cos(angle_rad)
    kernel = np.exp(-0.5 * (along / sigma_px) ** 2 - 0.5 * (across / 0.3) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, r, mode="reflect")
    return signal.fftconvolve(padded, kernel, mode="same")[r:-r, r:-r]


def scan_lines(image: np.ndarray, peak: float, offset_frac: float, jump_prob: float,
               rng: np.random.Generator) -> np.ndarray:
    """Per-line additive offsets (std ``offset_frac * peak``) and multiplicative gain jumps."""
    h = image.shape[0]
    offsets = rng.normal(0, offset_frac * peak, size=(h, 1))
    jumps = np.where(rng.uniform(size=h) < jump_prob, rng.uniform(0.8, 1.25, size=h), 1.0)
    return image * np.cumprod(jumps)[:, None] + offsets


def detector(electrons: np.ndarray, gain: float, offset: float, read_noise: float,
             rng: np.random.Generator) -> np.ndarray:
    """Counts from detected electrons: ``gain * electrons + offset + N(0, read_noise)``."""
    return gain * electrons + offset + rng.normal(0, read_noise, size=electrons.shape)


def quantise_affine(image: np.ndarray, low_pct: float, high_pct: float) -> tuple[float, float]:
    """The scaling ``(a, b)`` of an 8-bit export before saturation and rounding: ``a * image + b``."""
    lo, hi = np.percentile(image, [low_pct, high_pct])
    a = 255 / max(float(hi - lo), 1e-12)
    return a, -float(lo) * a


def quantise(image: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """8-bit export: the percentiles map to 0 and 255, values outside saturate, rounded."""
    a, b = quantise_affine(image, low_pct, high_pct)
    return np.rint(np.clip(a * image + b, 0, 255))
