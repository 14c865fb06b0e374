"""The STEM probe (abTEM) and the point-spread function of one frame.
"""

from __future__ import annotations

import numpy as np

from atomloc.core.optics import FWHM_PER_SIGMA
from atomloc.simulate.spec import SeriesSpec

MAX_SAMPLING_A = 0.05
"""Coarsest sampling of the point-spread function, Å (the output pixel is binned from it)."""


def probe_intensity(energy_keV: float, semiangle_mrad: float, sampling_A: float, gpts: int,
                    defocus_A: float = 0.0, astigmatism_A: float = 0.0, astigmatism_angle_deg: float = 0.0
                    ) -> np.ndarray:
    """Intensity |psi|^2 of the STEM probe, computed by abTEM.

    Parameters
    ----------
    energy_keV : float
        Beam energy, keV.
    semiangle_mrad : float
        Convergence semi-angle, mrad (soft aperture edge).
    sampling_A : float
        Grid sampling, Å.
    gpts : int
        Grid points per side (the grid is ``gpts * sampling_A`` Å wide).
    defocus_A : float
        Defocus, Å (abTEM's sign: positive = underfocus, C10 = -defocus).
    astigmatism_A, astigmatism_angle_deg : float
        2-fold astigmatism C12, Å, and its angle phi12, degrees.

    Returns
    -------
    ndarray of float64, shape (gpts, gpts)
        Probe intensity normalised to unit sum, centred on index ``gpts // 2``
        along both axes (row = y, column = x).
    """
    import abtem

    # numpy's FFT: FFTW's default planning (MEASURE) is slow on one-off grids and buys nothing here.
    with abtem.config.set({"fft": "numpy"}):
        probe = abtem.Probe(energy=energy_keV * 1e3, semiangle_cutoff=semiangle_mrad, sampling=sampling_A,
                            gpts=gpts, defocus=defocus_A, astigmatism=astigmatism_A,
                            astigmatism_angle=np.deg2rad(astigmatism_angle_deg))
        intensity = probe.build(lazy=False).intensity().array
    # abTEM's arrays are indexed (x, y); ours (row = y, column = x).
    intensity = np.asarray(intensity, dtype=np.float64).T
    return intensity / intensity.sum()


def point_spread_function(probe: np.ndarray, sampling_A: float, pixel_size_A: float, blur_sigma_A: float
                          ) -> np.ndarray:
    """The image of one point column: the probe intensity blurred and integrated over a pixel.

    Convolves ``probe`` with an isotropic Gaussian of sigma ``blur_sigma_A``
    (source size and thermal smearing) and with the output pixel (a box of side
    ``pixel_size_A``: binning the finely sampled image to the output pixels),
    both in Fourier space so that the centre stays exactly at index
    ``gpts // 2``.

    Parameters
    ----------
    probe : ndarray, shape (n, n)
        Probe intensity on a grid of ``sampling_A`` (:func:`probe_intensity`).
    sampling_A, pixel_size_A, blur_sigma_A : float
        Grid sampling, output pixel size and blur sigma, Å.

    Returns
    -------
    ndarray of float64, shape (n, n)
        Same normalisation as ``probe`` (the sum is preserved).
    """
    n0, n1 = probe.shape
    ky = np.fft.fftfreq(n0, d=sampling_A)[:, None]
    kx = np.fft.fftfreq(n1, d=sampling_A)[None, :]
    transfer = np.exp(-2.0 * np.pi ** 2 * blur_sigma_A ** 2 * (kx ** 2 + ky ** 2))
    transfer = transfer * np.sinc(kx * pixel_size_A) * np.sinc(ky * pixel_size_A)
    out = np.fft.ifft2(np.fft.fft2(probe) * transfer).real
    return out


def _oversample(pixel_size_A: float) -> int:
    return max(1, int(np.ceil(pixel_size_A / MAX_SAMPLING_A - 1e-9)))


def _psf_gpts(sampling_A: float, spec: SeriesSpec) -> int:
    """Grid points of the PSF table: wide enough for the probe tails and the defocus spread."""
    from scipy.fft import next_fast_len

    defocus_A = 10.0 * max(abs(spec.defocus_nm[0]), abs(spec.defocus_nm[1])) + 10.0 * spec.astigmatism_nm
    radius_A = 5.0 + defocus_A * spec.semiangle_mrad * 1e-3 + 3.0 * spec.source_size_A
    n = next_fast_len(int(np.ceil(2 * radius_A / sampling_A)))
    return n + n % 2


def frame_psf(spec: SeriesSpec, defocus_nm: float = 0.0, astigmatism_nm: float = 0.0,
              astigmatism_angle_deg: float = 0.0) -> tuple[np.ndarray, int]:
    """The point-spread-function table of one frame (:func:`point_spread_function`).

    Returns
    -------
    psf : ndarray, shape (n, n)
        Sampled at ``pixel size / oversample``, unit sum.
    oversample : int
        Table samples per output pixel (sampling <= :data:`MAX_SAMPLING_A`).
    """
    px_A = spec.pixel_size_pm / 100.0
    ov = _oversample(px_A)
    sampling = px_A / ov
    probe = probe_intensity(spec.energy_keV, spec.semiangle_mrad, sampling, _psf_gpts(sampling, spec),
                            defocus_A=10.0 * defocus_nm, astigmatism_A=10.0 * astigmatism_nm,
                            astigmatism_angle_deg=astigmatism_angle_deg)
    blur = np.hypot(spec.source_size_A / FWHM_PER_SIGMA, spec.column_sigma_A)
    return point_spread_function(probe, sampling, px_A, blur), ov
