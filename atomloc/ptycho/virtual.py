"""Virtual images of a 4D-STEM scan: annular dark field, bright field and the integrated centre of mass.

Every image lies on the scan grid (row = y, column = x, scan pixel (0, 0) at the
first probe position), the grid of the truth and of
:func:`atomloc.ptycho.reconstruct.phase_on_scan_grid`.
"""

from __future__ import annotations

import numpy as np

from atomloc.core.errors import AtomlocInputError
from atomloc.core.optics import electron_wavelength_A
from atomloc.ptycho.model import as_pair, centred_frequencies


def detector_angles_mrad(shape_px, angular_sampling_mrad) -> np.ndarray:
    """Scattering angle of every detector pixel, mrad (zero angle at pixel ``(ky // 2, kx // 2)``)."""
    ay, ax = as_pair(angular_sampling_mrad)
    ny, nx = shape_px
    ty = (np.arange(ny) - ny // 2)[:, None] * ay
    tx = (np.arange(nx) - nx // 2)[None, :] * ax
    return np.hypot(ty, tx)


def detector_edge_mrad(shape_px, angular_sampling_mrad) -> float:
    """The largest angle the detector holds in every direction (the inscribed circle), mrad."""
    ay, ax = as_pair(angular_sampling_mrad)
    ny, nx = shape_px
    # pixels -n//2 .. n - 1 - n//2 about the zero angle: the positive side is one shorter for even n
    return float(min((ny - 1 - ny // 2) * ay, (nx - 1 - nx // 2) * ax))


def centre_of_mass(data: np.ndarray, reciprocal_sampling_per_A) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass of each pattern, 1/Å, its mean over the scan removed.

    Returns
    -------
    com_x, com_y : ndarray, shape (ny_scan, nx_scan)
    """
    dky, dkx = as_pair(reciprocal_sampling_per_A)
    ny, nx = data.shape[-2:]
    ky = centred_frequencies(ny, 1.0 / (ny * dky))
    kx = centred_frequencies(nx, 1.0 / (nx * dkx))
    total = data.sum(axis=(-2, -1))
    total = np.where(total > 0, total, 1.0)
    com_y = np.einsum("abij,i->ab", data, ky) / total
    com_x = np.einsum("abij,j->ab", data, kx) / total
    return com_x - com_x.mean(), com_y - com_y.mean()


def integrate_gradient(gx: np.ndarray, gy: np.ndarray, sampling_A) -> np.ndarray:
    """The periodic function whose gradient is ``2 pi (gx, gy)``, by Fourier integration (mean zero).

    Parameters
    ----------
    gx, gy : ndarray, shape (ny, nx)
        Gradient field divided by 2 pi (the centre of mass in 1/Å), along x and y.
    sampling_A : float or (float, float)
        Grid step (y, x), Å.

    Returns
    -------
    ndarray, shape (ny, nx)
        ``phi`` with ``F[phi] = (qx F[gx] + qy F[gy]) / (i q^2)``, rad.
    """
    sy, sx = as_pair(sampling_A)
    ny, nx = gx.shape
    qy = np.fft.fftfreq(ny, d=sy)[:, None]
    qx = np.fft.fftfreq(nx, d=sx)[None, :]
    q2 = qx ** 2 + qy ** 2
    q2[0, 0] = 1.0
    spectrum = (qx * np.fft.fft2(gx) + qy * np.fft.fft2(gy)) / (1j * q2)
    spectrum[0, 0] = 0.0
    return np.fft.ifft2(spectrum).real


def virtual_images(data, *, semiangle_mrad: float, scan_sampling_A, angular_sampling_mrad=None,
                   reciprocal_sampling_per_A=None, energy_keV: float | None = None, adf_mrad=(40.0, 86.0),
                   bf_mrad: float | None = None) -> dict:
    """Virtual ADF, BF and iCoM images of a 4D-STEM scan.

    Parameters
    ----------
    data : array, shape (ny_scan, nx_scan, ky, kx)
        Diffraction intensities, zero angle at pixel ``(ky // 2, kx // 2)``.
    semiangle_mrad : float
        Convergence semi-angle, mrad (the default BF disc).
    scan_sampling_A : float or (float, float)
        Scan step (y, x), Å (the iCoM's integration).
    angular_sampling_mrad, reciprocal_sampling_per_A : float or (float, float)
        Detector calibration (y, x): mrad or 1/Å per pixel; give one, or both.
    energy_keV : float, optional
        Needed to convert one calibration into the other when only one is given.
    adf_mrad : (float, float)
        Inner and outer ADF angles, mrad; the outer one is cut to the detector's
        edge (:func:`detector_edge_mrad`) when that is smaller.
    bf_mrad : float, optional
        Outer angle of the BF disc, mrad (default ``semiangle_mrad``).

    Returns
    -------
    dict
        ``adf``, ``bf`` (summed intensities), ``icom`` (rad, mean zero), ``com_x``,
        ``com_y`` (1/Å) float32 (ny_scan, nx_scan); ``adf_mrad`` (the angles used)
        and ``bf_mrad``.

    Raises
    ------
    AtomlocInputError
        Naming the parameter: data not 4-D or not finite, calibration missing,
        an empty ADF annulus.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 4:
        raise AtomlocInputError(f"virtual_images: data must be [ny_scan, nx_scan, ky, kx], got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise AtomlocInputError("virtual_images: data holds NaN or infinite values")
    if angular_sampling_mrad is None and reciprocal_sampling_per_A is None:
        raise AtomlocInputError("virtual_images: give angular_sampling_mrad or reciprocal_sampling_per_A")
    if angular_sampling_mrad is None or reciprocal_sampling_per_A is None:
        if energy_keV is None:
            raise AtomlocInputError("virtual_images: energy_keV is needed to convert the detector calibration")
        wavelength = electron_wavelength_A(energy_keV)
        if angular_sampling_mrad is None:
            angular_sampling_mrad = tuple(1e3 * wavelength * k for k in as_pair(reciprocal_sampling_per_A))
        else:
            reciprocal_sampling_per_A = tuple(1e-3 * a / wavelength for a in as_pair(angular_sampling_mrad))
    shape = data.shape[-2:]
    theta = detector_angles_mrad(shape, angular_sampling_mrad)
    inner, outer = float(adf_mrad[0]), min(float(adf_mrad[1]), detector_edge_mrad(shape, angular_sampling_mrad))
    annulus = (theta >= inner) & (theta < outer)
    if not annulus.any():
        raise AtomlocInputError(f"virtual_images: adf_mrad={tuple(adf_mrad)}: no detector pixel between {inner} and "
                                f"{outer:.1f} mrad (detector edge)")
    bf_outer = float(semiangle_mrad if bf_mrad is None else bf_mrad)
    disc = theta <= bf_outer
    com_x, com_y = centre_of_mass(data, reciprocal_sampling_per_A)
    icom = integrate_gradient(com_x, com_y, scan_sampling_A)
    return {"adf": data[..., annulus].sum(axis=-1).astype(np.float32),
            "bf": data[..., disc].sum(axis=-1).astype(np.float32), "icom": icom.astype(np.float32),
            "com_x": com_x.astype(np.float32), "com_y": com_y.astype(np.float32), "adf_mrad": (inner, outer),
            "bf_mrad": bf_outer}
