"""The ptychographic forward model in PyTorch: probe, probe shifts, Fresnel propagation, diffraction intensities.

Conventions
-----------
* Arrays are indexed (row = y, column = x); every per-axis grid quantity
  (sampling, origin, shape) is given in that order, ``(y, x)``.
* A diffraction pattern of ``(Ny, Nx)`` detector pixels of reciprocal sampling
  ``(dky, dkx)`` (1/Å per pixel) has the zero scattering angle at pixel
  ``(Ny // 2, Nx // 2)`` (``fftshift`` order, as abTEM's).  The real-space
  window it resolves is ``Ny * sy = 1 / dky`` Å tall, so the probe and the
  object are sampled at ``s = 1 / (N dk)`` Å per pixel.
* The probe array is centred on window pixel ``(Ny // 2, Nx // 2)``: the probe of a
  scan position whose centre falls on object pixel ``c`` (fractional) is the probe
  shifted by ``c - round(c)`` and multiplied with the object window that starts at
  ``round(c) - N // 2``.
* The detected intensity is ``|F[P(r - r_p) O(r)]|^2`` with the unitary FFT
  (``norm="ortho"``), so the sum of a pattern is the probe's ``sum |P|^2`` for a pure
  phase object.  Multislice: ``psi <- F^-1[F[psi O_s] H]`` between slices, with the Fresnel
  propagator ``H = exp(-i pi lambda dz k^2)`` (abTEM's sign).
* Aberration phase of the probe ``chi = pi lambda k^2 C10`` with ``C10 = -defocus_A``
  (abTEM's sign: positive defocus = underfocus); the probe in reciprocal space is
  ``A(k) exp(-i chi)``.
"""

from __future__ import annotations

import numpy as np

from atomloc.core.optics import electron_wavelength_A


def as_pair(value, name: str = "value") -> tuple[float, float]:
    """A scalar or a (y, x) pair as a tuple of two floats."""
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (2,))
    return float(arr[0]), float(arr[1])


def centred_frequencies(n: int, sampling: float) -> np.ndarray:
    """Spatial frequencies of the ``fftshift`` order (zero at index ``n // 2``) for ``n`` samples of ``sampling``."""
    return np.fft.fftshift(np.fft.fftfreq(n, d=sampling))


def initial_probe(shape_px: tuple[int, int], reciprocal_sampling_per_A, energy_keV: float, semiangle_mrad: float,
                  defocus_A: float = 0.0, total_intensity: float = 1.0) -> np.ndarray:
    """The probe of an ideal aperture and a defocus in real space, centred on pixel ``(Ny // 2, Nx // 2)``.

    Parameters
    ----------
    shape_px : (int, int)
        Window (= detector) shape (Ny, Nx).
    reciprocal_sampling_per_A : float or (float, float)
        Detector sampling (dky, dkx), 1/Å per pixel.
    energy_keV, semiangle_mrad, defocus_A : float
        Beam energy, convergence semi-angle (a soft edge one detector pixel wide,
        as abTEM's) and defocus (abTEM's sign), Å.
    total_intensity : float
        ``sum |P|^2`` of the returned probe.

    Returns
    -------
    ndarray of complex128, shape (Ny, Nx)
    """
    ny, nx = shape_px
    dky, dkx = as_pair(reciprocal_sampling_per_A)
    wavelength = electron_wavelength_A(energy_keV)
    ky = centred_frequencies(ny, 1.0 / (ny * dky))[:, None]
    kx = centred_frequencies(nx, 1.0 / (nx * dkx))[None, :]
    k = np.hypot(kx, ky)
    theta_mrad = 1e3 * wavelength * k
    edge_mrad = 1e3 * wavelength * max(dky, dkx)
    aperture = np.clip((semiangle_mrad - theta_mrad) / edge_mrad + 0.5, 0.0, 1.0)
    chi = np.pi * wavelength * k ** 2 * (-defocus_A)
    probe_k = aperture * np.exp(-1j * chi)
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(probe_k), norm="ortho"))
    return probe * np.sqrt(total_intensity / max(float(np.sum(np.abs(probe) ** 2)), 1e-30))


def fresnel_propagator(shape_px: tuple[int, int], reciprocal_sampling_per_A, energy_keV: float,
                       thickness_A: float) -> np.ndarray:
    """Fresnel propagator ``exp(-i pi lambda dz k^2)`` in unshifted FFT order (index 0 = zero frequency).

    Returns
    -------
    ndarray of complex128, shape (Ny, Nx)
    """
    ny, nx = shape_px
    dky, dkx = as_pair(reciprocal_sampling_per_A)
    ky = np.fft.fftfreq(ny, d=1.0 / (ny * dky))[:, None]
    kx = np.fft.fftfreq(nx, d=1.0 / (nx * dkx))[None, :]
    wavelength = electron_wavelength_A(energy_keV)
    return np.exp(-1j * np.pi * wavelength * thickness_A * (kx ** 2 + ky ** 2))


def window_corners(centres_px: np.ndarray, shape_px: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Integer top-left corners of the probe windows and the fractional shifts of the probe.

    Parameters
    ----------
    centres_px : ndarray, shape (n, 2)
        Probe centres in object pixels, columns (y, x).
    shape_px : (int, int)
        Window shape (Ny, Nx).

    Returns
    -------
    corners : ndarray of int64, shape (n, 2)
        ``round(c) - N // 2`` (y, x).
    shifts : ndarray of float64, shape (n, 2)
        ``c - round(c)`` (y, x), in [-0.5, 0.5].
    """
    centres_px = np.asarray(centres_px, dtype=np.float64)
    whole = np.round(centres_px)
    return (whole - np.array(shape_px) // 2).astype(np.int64), centres_px - whole


def shift_probes(probe, shifts_px):
    """Sub-pixel shifts of one probe, by a phase ramp in Fourier space (periodic in the window).

    Parameters
    ----------
    probe : torch.Tensor, complex, shape (Ny, Nx)
    shifts_px : torch.Tensor, real, shape (B, 2)
        Shifts (y, x), pixels.

    Returns
    -------
    torch.Tensor, complex, shape (B, Ny, Nx)
        ``P(r - d)`` for every shift ``d``.
    """
    import torch

    ny, nx = probe.shape[-2:]
    ky = torch.fft.fftfreq(ny, device=probe.device, dtype=shifts_px.dtype)
    kx = torch.fft.fftfreq(nx, device=probe.device, dtype=shifts_px.dtype)
    ramp = (shifts_px[:, 0, None, None] * ky[None, :, None] + shifts_px[:, 1, None, None] * kx[None, None, :])
    phase = torch.polar(torch.ones_like(ramp), -2.0 * np.pi * ramp)
    return torch.fft.ifft2(torch.fft.fft2(probe)[None] * phase)


def object_windows(obj, corners, shape_px: tuple[int, int]):
    """The windows of the object under each probe position.

    Parameters
    ----------
    obj : torch.Tensor, shape (..., H, W)
        Object (complex transmission, or any per-pixel array), leading slice axes allowed.
    corners : torch.Tensor of int64, shape (B, 2)
        Top-left corners (y, x) (:func:`window_corners`).
    shape_px : (int, int)

    Returns
    -------
    torch.Tensor, shape (B, ..., Ny, Nx)
    """
    import torch

    ny, nx = shape_px
    rows = corners[:, 0, None] + torch.arange(ny, device=corners.device)[None, :]  # (B, Ny)
    cols = corners[:, 1, None] + torch.arange(nx, device=corners.device)[None, :]  # (B, Nx)
    out = obj[..., rows[:, :, None], cols[:, None, :]]  # (..., B, Ny, Nx)
    return torch.movedim(out, -3, 0) if obj.dim() > 2 else out


def exit_waves(probes, windows, propagator=None):
    """Exit waves of the probes through the object windows (single slice or multislice).

    Parameters
    ----------
    probes : torch.Tensor, complex, shape (B, Ny, Nx)
    windows : torch.Tensor, complex, shape (B, Ny, Nx) or (B, S, Ny, Nx)
        Transmission functions of the windows (S slices, beam entering slice 0).
    propagator : torch.Tensor, complex, shape (Ny, Nx), optional
        Fresnel propagator between slices, unshifted FFT order (needed when S > 1).

    Returns
    -------
    torch.Tensor, complex, shape (B, Ny, Nx)
    """
    import torch

    if windows.dim() == 3:
        return probes * windows
    psi = probes * windows[:, 0]
    for s in range(1, windows.shape[1]):
        psi = torch.fft.ifft2(torch.fft.fft2(psi) * propagator) * windows[:, s]
    return psi


def diffraction_amplitudes(psi):
    """``|F[psi]|`` with the unitary FFT, zero frequency at pixel ``(Ny // 2, Nx // 2)``."""
    import torch

    return torch.abs(torch.fft.fftshift(torch.fft.fft2(psi, norm="ortho"), dim=(-2, -1)))


def forward_intensities(obj, probe, centres_px, *, propagator=None):
    """Diffraction intensities ``|F[P(r - r_p) O(r)]|^2`` of probe positions (the model in one call).

    Parameters
    ----------
    obj : torch.Tensor, complex, shape (H, W) or (S, H, W)
        Object transmission function(s).
    probe : torch.Tensor, complex, shape (Ny, Nx)
    centres_px : ndarray, shape (B, 2)
        Probe centres in object pixels (y, x).
    propagator : torch.Tensor, optional
        Fresnel propagator between slices (:func:`fresnel_propagator`).

    Returns
    -------
    torch.Tensor, real, shape (B, Ny, Nx)
    """
    import torch

    shape = tuple(probe.shape[-2:])
    corners, shifts = window_corners(centres_px, shape)
    real = torch.float64 if probe.dtype == torch.complex128 else torch.float32
    probes = shift_probes(probe, torch.as_tensor(shifts, dtype=real, device=probe.device))
    windows = object_windows(obj, torch.as_tensor(corners, device=probe.device), shape)
    return diffraction_amplitudes(exit_waves(probes, windows, propagator)) ** 2
