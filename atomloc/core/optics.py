"""Electron optics: wavelength, probe size and depth of field, Gaussian widths.

Units carry their name: ``energy_keV`` (kV of the accelerating voltage), ``semiangle_mrad``,
lengths in Å (``_A``) or nm (``_nm``).
"""

from __future__ import annotations

import numpy as np

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
"""FWHM of a Gaussian in units of its sigma."""


def electron_wavelength_A(energy_kV: float) -> float:
    """Relativistic electron wavelength in Å at ``energy_kV`` kV."""
    h, m0, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 2.99792458e8
    v = energy_kV * 1e3
    return 1e10 * h / np.sqrt(2 * m0 * e * v * (1 + e * v / (2 * m0 * c ** 2)))


def circular_mask_radius_A(energy_kV: float, convergence_mrad: float, source_size_A: float) -> float:
    """TEMImageNet's circularMask radius ``sqrt((0.5 lambda / alpha)^2 + (d_source / 2)^2)``, Å.

    References
    ----------
    .. [1] R. Lin et al., Sci. Rep. 11, 5386 (2021): TEMImageNet and AtomSegNet (see
       :func:`atomloc.locate.learned.atomsegnet_locate`).
    """
    return float(np.hypot(0.5 * electron_wavelength_A(energy_kV) / (convergence_mrad * 1e-3), source_size_A / 2))


def probe_sigma_A(energy_kV: float, convergence_mrad: float, defocus_nm: float, source_size_A: float) -> float:
    """Sigma of the Gaussian approximation of the probe intensity, Å.

    The diffraction-limited probe (FWHM ``0.51 lambda / alpha``), the geometric
    defocus disc (radius ``|defocus| * alpha``, taken as FWHM ``|defocus| * alpha``)
    and the source (FWHM ``source_size_A``) add in quadrature.
    """
    alpha = convergence_mrad * 1e-3
    fwhm = np.sqrt((0.51 * electron_wavelength_A(energy_kV) / alpha) ** 2 + (abs(defocus_nm) * 10 * alpha) ** 2
                   + source_size_A ** 2)
    return float(fwhm / FWHM_PER_SIGMA)


def depth_of_field_nm(energy_keV: float, semiangle_mrad: float) -> float:
    """Full depth of field of a STEM probe, ``1.77 lambda / alpha**2``, in nm.

    Columns in an image taken within half this distance of focus are imaged by
    the probe's central maximum; further out the probe's side lobes carry
    comparable intensity and the image peaks move off the columns.
    """
    return float(1.77 * electron_wavelength_A(energy_keV) / (semiangle_mrad * 1e-3) ** 2 / 10)


def in_focus(defocus_nm, energy_keV: float, semiangle_mrad: float) -> tuple[np.ndarray, float]:
    """Which defoci lie within half the probe's depth of field of focus.

    Parameters
    ----------
    defocus_nm : array_like
        Defocus of each frame, nm.
    energy_keV, semiangle_mrad : float
        Beam energy (keV) and convergence semi-angle (mrad).

    Returns
    -------
    in_focus : ndarray of bool
        ``|defocus_nm| <= half_dof_nm``.
    half_dof_nm : float
        Half of :func:`depth_of_field_nm`.
    """
    half = 0.5 * depth_of_field_nm(energy_keV, semiangle_mrad)
    return np.abs(np.asarray(defocus_nm, dtype=float)) <= half, half
