"""Image restoration before locating: TEMImageNet's learned restorations and the classical peers.

Learned (a ``restorer`` U-Net, :mod:`atomloc.locate.nets.models`, trained on
the library's restoration targets, :mod:`atomloc.simulate.library`; shipped in
the package as ``atomloc/models/<name>.pt``):

* ``denoise``: the expected image (noNoise): Poisson, read and scan-line noise removed;
* ``denoise_bg``: the columns alone (noBackgroundnoNoise): noise and background removed;
* ``superres``: the columns alone, each sharpened to a Gaussian of the library's
  ``superres_fwhm_A`` with its integrated intensity kept (noNoiseNoBackgroundSuperresolution).

Classical peers (maintained libraries; noise level from
:func:`atomloc.locate.noise.noise_sigma`, scales from the column spacing):

* ``nl_means``: scikit-image ``denoise_nl_means`` (fast mode, h = 0.8 sigma, patches of
  spacing / 3, search window of one spacing);
* ``tv``: scikit-image ``denoise_tv_chambolle`` (weight = sigma);
* ``wavelet``: scikit-image ``denoise_wavelet`` (BayesShrink, soft, sigma given; needs PyWavelets);
* ``bm3d``: BM3D (``bm3d`` on PyPI, sigma_psd = sigma);
* ``rl``: Richardson-Lucy deconvolution with the Gaussian PSF :func:`atomloc.locate.classical.rl_gaussfit`
  uses (deblur);
* ``bg``: background removal, the image minus :func:`atomloc.locate.noise.spacing_background`.

Every restoration is ``func(image, spacing_px) -> image`` of the same shape in
the image's units, registered for ``"<method>@<restoration>"``
(:func:`atomloc.locate.registry.locate`), where the raw image judges what the
method finds on the restored one (:func:`gate_restored`): a detection stays only
where the raw image is as bright as the classical methods demand of a column
(on pure noise, about 0.1 % of a lattice's cells pass).  :func:`restore` runs
one (or a ``+`` chain) on its own.

Coordinates: pixels, x = column index, pixel centres at integers.

References
----------
.. [1] R. Lin et al., "TEMImageNet training library and AtomSegNet deep-learning models for
   high-precision atom segmentation, localization, denoising, and deblurring of atomic-resolution
   images", Sci. Rep. 11, 5386 (2021).
.. [2] K. Zhang et al., "Beyond a Gaussian denoiser: residual learning of deep CNN for image
   denoising", IEEE Trans. Image Process. 26, 3142 (2017) (the residual head).
.. [3] K. Dabov et al., "Image denoising by sparse 3-D transform-domain collaborative filtering",
   IEEE Trans. Image Process. 16, 2080 (2007) (BM3D).
.. [4] A. Buades, B. Coll, J.-M. Morel, "A non-local algorithm for image denoising", CVPR (2005).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atomloc.core.errors import AtomlocInputError
from atomloc.core.image import validate_image
from atomloc.locate.learned import (AUTO, NO_LATTICE_FALSE_ALARMS, column_spacing, load_model, network_scale,
                                    resolve_model_path)
from atomloc.locate.nets import RESTORATION_TARGETS, RESTORER, target_shift
from atomloc.locate.noise import noise_sigma, spacing_background
from atomloc.locate.registry import get_restorations, register_restoration, restoration_spacing

LEARNED_RESTORATIONS = tuple(RESTORATION_TARGETS)
"""The learned restorations (``denoise``, ``denoise_bg``, ``superres``)."""


def gate_restored(raw: np.ndarray, found: pd.DataFrame, spacing_px: float | None) -> pd.DataFrame:
    """Keep detections made on a restored image where the raw image backs them.

    :func:`atomloc.locate.classical.backed_by`: the height of the raw image's
    smoothed, background-subtracted map at each detection must stand out of the
    raw image's noise by the classical methods' rule (false-alarm rate 0.001 per
    lattice cell, 0.1 within 1.6 spacings of such a column), the rule by which
    ``rl_gaussfit`` judges its deconvolved maxima.  A restoration smooths and
    sharpens: its own noise level is tiny, so thresholds in units of it would let
    hallucinated texture through.  Where the raw image shows no lattice
    (``spacing_px`` None) the test runs at 8 px with 0.01 expected false alarms
    per image (:data:`atomloc.locate.learned.NO_LATTICE_FALSE_ALARMS`), as the
    learned methods' noise gate does.  Nothing is merged: both columns of a
    resolved close pair stay where the raw image is bright at both.
    """
    from atomloc.locate.classical import backed_by

    if spacing_px is not None:
        return backed_by(raw, found, spacing_px)
    nominal = 8.0
    rate = min(0.001, NO_LATTICE_FALSE_ALARMS / (np.asarray(raw).size / nominal ** 2))
    return backed_by(raw, found, nominal, false_alarm_rate=rate, neighbour_false_alarm_rate=rate)


def _register(name: str, description: str, needs_spacing: bool = False, requires=(), extra: str = ""):
    """Register a restoration with this module's gate and spacing rule (:func:`column_spacing`)."""
    return register_restoration(name, description, gate=gate_restored, spacing=column_spacing,
                                needs_spacing=needs_spacing, requires=requires, extra=extra)


# --- learned ---------------------------------------------------------------------------------------

def _model_for(restoration: str, model, device: str):
    path = resolve_model_path(model, restoration)
    net, meta = load_model(path, RESTORER, device, with_meta=True)
    trained = meta.get("restoration")
    if trained is not None and trained != restoration:
        raise AtomlocInputError(f"{path}: a {trained!r} restorer, but {restoration!r} was asked for")
    return net, meta


def learned_restore(image: np.ndarray, restoration: str, spacing_px=AUTO, *, model=AUTO, rescale: str = "auto",
                    max_tile_px: int = 1024, device: str = AUTO, tta: bool = False) -> np.ndarray:
    """Restore ``image`` with a trained ``restorer`` (denoise, denoise_bg or superres).

    The image is scaled to the network's input range
    (:func:`atomloc.locate.nets.models.input_scaling`), resampled into the
    model's trained spacing band where its spacing lies outside
    (:func:`atomloc.locate.learned.network_scale`), restored in tiles of at
    most ``max_tile_px`` (:func:`atomloc.locate.nets.models.predict`),
    resampled back to the image's pixels (linear) and mapped back to the
    image's units (times the scale, plus the low percentile for ``denoise``:
    :func:`atomloc.locate.nets.target_shift`).

    Parameters
    ----------
    image : ndarray, shape (H, W)
    restoration : str
        One of :data:`LEARNED_RESTORATIONS`.
    spacing_px : float, None or "auto"
        Column spacing, pixels (``auto``: measured where the band needs it; None:
        no lattice, the image keeps its scale).
    model : path or "auto"
        Checkpoint of a restorer; ``auto`` = the weights shipped in the package.
    rescale : {"auto", "none"}
    max_tile_px : int
    device : str
    tta : bool
        Average the network's output over the eight rotations and mirror
        images of the input, each mapped back (D4 test-time averaging,
        :func:`atomloc.locate.nets.models.predict`): 8x the network's time;
        on the held-out structures of ``benchmarks/restoration.py`` (2026-12-03,
        8 frames per dose) +0.5 to +1.4 dB PSNR at 10^3-10^5 e/A^2 for
        ``denoise`` and ``denoise_bg``.

    Returns
    -------
    ndarray of float64, shape (H, W)
        The restored image, in the units of ``image``.
    """
    from skimage.transform import resize

    from atomloc.core.image import resample
    from atomloc.locate.nets.models import input_scaling, noise_level, predict

    if restoration not in LEARNED_RESTORATIONS:
        raise AtomlocInputError(f"restoration {restoration!r}: expected one of {', '.join(LEARNED_RESTORATIONS)}")
    image = np.asarray(image, dtype=np.float64)
    net, meta = _model_for(restoration, model, device)
    factor = network_scale(image, spacing_px, meta, rescale)
    scaled = image if factor == 1.0 else resample(image, factor)[0]
    lo, scale = input_scaling(scaled)
    # up-sampling leaves little noise at high frequencies, where noise_level looks: the network is told the
    # level of the image it was given (measured after down-sampling, which keeps the noise white)
    levels = [noise_level(image)] if net.noise_channel and factor > 1.0 else None
    out, _ = predict(net, scaled, max_tile_px=max_tile_px, tta=bool(tta), noise_levels=levels)
    out = out[0].astype(np.float64) * scale + target_shift(RESTORATION_TARGETS[restoration], lo)
    if out.shape != image.shape:
        out = resize(out, image.shape, order=1, mode="reflect", anti_aliasing=False, preserve_range=True)
    return out


def _learned(name):
    def func(image, spacing_px):
        return learned_restore(image, name, spacing_px)
    func.__name__ = name
    func.__doc__ = f"Learned restoration {name!r} (:func:`learned_restore`) with the shipped weights."
    return func


for _name, _target in RESTORATION_TARGETS.items():
    _register(_name, f"U-Net restorer trained on the library's {_target} target (shipped weights)")(_learned(_name))


# --- classical peers -------------------------------------------------------------------------------

def _odd(value: float, lo: int, hi: int) -> int:
    v = int(np.clip(round(value), lo, hi))
    return v if v % 2 else v + 1


@_register("nl_means", "scikit-image non-local means (h = 0.8 x noise sigma, patches of spacing / 3)")
def nl_means(image: np.ndarray, spacing_px: float | None) -> np.ndarray:
    """scikit-image ``denoise_nl_means``, fast mode, ``h = 0.8 sigma`` (its documented choice).

    Patches of ``spacing / 3`` (odd, 3-9 px) searched within ``spacing`` (5-15 px),
    so a column's neighbours, which look alike, lie inside the search window;
    without a lattice (None) those of an 8 px spacing.
    """
    from skimage.restoration import denoise_nl_means

    spacing_px = 8.0 if spacing_px is None else spacing_px
    sigma = noise_sigma(image)
    return denoise_nl_means(np.asarray(image, dtype=np.float64), h=0.8 * sigma, sigma=sigma, fast_mode=True,
                            patch_size=_odd(spacing_px / 3, 3, 9),
                            patch_distance=int(np.clip(round(spacing_px), 5, 15)))


@_register("tv", "scikit-image total-variation denoising (Chambolle, weight = noise sigma)")
def tv(image: np.ndarray, spacing_px: float | None) -> np.ndarray:
    """scikit-image ``denoise_tv_chambolle`` with ``weight`` = the noise sigma (image units)."""
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(np.asarray(image, dtype=np.float64), weight=noise_sigma(image))


@_register("wavelet", "scikit-image wavelet denoising (BayesShrink, soft, noise sigma given)", requires=("pywt",),
           extra="restore")
def wavelet(image: np.ndarray, spacing_px: float | None) -> np.ndarray:
    """scikit-image ``denoise_wavelet`` (BayesShrink, soft thresholds, ``sigma`` from :func:`noise_sigma`)."""
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(np.asarray(image, dtype=np.float64), sigma=noise_sigma(image), mode="soft",
                           method="BayesShrink", rescale_sigma=True)


@_register("bm3d", "BM3D (the bm3d package, sigma_psd = noise sigma)", requires=("bm3d",), extra="restore")
def bm3d(image: np.ndarray, spacing_px: float | None) -> np.ndarray:
    """BM3D (``bm3d.bm3d``, all stages) with the white noise's sigma from :func:`noise_sigma`."""
    import bm3d as _bm3d

    image = np.asarray(image, dtype=np.float64)
    return np.asarray(_bm3d.bm3d(image, sigma_psd=noise_sigma(image)), dtype=np.float64)


@_register("rl", "Richardson-Lucy deblur with rl_gaussfit's Gaussian PSF (0.7 x the fitted column sigma, "
           "10 iterations)", needs_spacing=True)
def rl(image: np.ndarray, spacing_px: float) -> np.ndarray:
    """Richardson-Lucy deconvolution, the PSF and iterations of :func:`atomloc.locate.classical.rl_gaussfit`.

    Where no column stands out of the noise (nothing to measure the PSF on) the image is returned as is.
    """
    from atomloc.locate.classical import column_psf_sigma, deconvolve

    psf_sigma = column_psf_sigma(image, spacing_px)
    if psf_sigma is None:
        return np.asarray(image, dtype=np.float64)
    return deconvolve(np.asarray(image, dtype=np.float64), psf_sigma, 10)


@_register("bg", "background removal: the image minus the spacing-scaled local background", needs_spacing=True)
def bg(image: np.ndarray, spacing_px: float) -> np.ndarray:
    """The image minus :func:`atomloc.locate.noise.spacing_background` (minimum over 2 spacings, smoothed)."""
    image = np.asarray(image, dtype=np.float64)
    return image - spacing_background(image, spacing_px)


# --- one entry point -------------------------------------------------------------------------------

def restore(image: np.ndarray, restoration: str, spacing_px=AUTO, *, model=AUTO, device: str = AUTO,
            tta: bool = False, name: str = "image") -> np.ndarray:
    """Restore ``image`` with a registered restoration (or a ``+`` chain, left to right).

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Grey image, any units.
    restoration : str
        A name of :func:`atomloc.locate.registry.available_restorations` or a chain
        such as ``bm3d+bg``.
    spacing_px : float or "auto"
        Column spacing, pixels (``auto``: :func:`atomloc.locate.learned.column_spacing`; where
        the image shows no lattice, the restorations that need a spacing, ``rl`` and ``bg``,
        are refused in one line).
    model : path or "auto"
        A restorer checkpoint for the (single) learned step; ``auto``: the shipped weights.
    device : str
        PyTorch device of a learned step.
    tta : bool
        D4 test-time averaging of a learned step (:func:`learned_restore`).
    name : str
        Used in error messages.

    Returns
    -------
    ndarray of float64, shape (H, W)
        In the units of ``image`` (a background-free restoration: the columns alone).
    """
    steps = get_restorations(restoration)
    learned = [s for s in steps if s.name in LEARNED_RESTORATIONS]
    if model != AUTO and len(learned) != 1:
        raise AtomlocInputError(f"restoration {restoration!r}: a model applies to one learned step "
                                f"({', '.join(LEARNED_RESTORATIONS)})")
    for step in steps:
        step.check_installed()
    out = validate_image(image, name)
    spacing = restoration_spacing(steps, out, spacing_px, name)
    for step in steps:
        if step.name in LEARNED_RESTORATIONS:
            out = learned_restore(out, step.name, spacing, model=model, device=device, tta=tta)
        else:
            out = step.func(out, spacing)
    return np.asarray(out, dtype=np.float64)

