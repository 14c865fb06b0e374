"""Ptychographic reconstruction of the object phase from a 4D-STEM scan by gradient descent (PyTorch).

The object ``O = exp(a + i phi)`` (log-amplitude ``a`` and phase ``phi`` per slice) and
the probe ``P`` minimise the amplitude loss

    L = sum_p sum_k ( sqrt(I_p(k)) - |F[P(r - r_p) O(r)](k)| )^2

with Adam over random mini-batches of probe positions (:mod:`atomloc.ptycho.model`).
The object grid is explicit: its pixel ``(i, j)`` sits at ``origin + (i sy, j sx)`` Å,
and scan positions are mapped onto it through their calibrated positions (never by
fitting to a lattice): :meth:`PtychoResult.A_to_object_px`,
:meth:`PtychoResult.scan_px_to_object_px`, :func:`phase_on_scan_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atomloc.core.errors import AtomlocInputError
from atomloc.core.optics import electron_wavelength_A
from atomloc.ptycho.model import (
    as_pair,
    diffraction_amplitudes,
    exit_waves,
    fresnel_propagator,
    initial_probe,
    object_windows,
    shift_probes,
    window_corners,
)


@dataclass(frozen=True)
class PtychoResult:
    """A reconstructed object and probe on explicit grids.

    Attributes
    ----------
    object : ndarray of complex64, shape (S, H, W)
        Transmission function of each slice (beam enters slice 0).
    phase : ndarray of float32, shape (H, W)
        Total phase, rad: the sum of the slices' phases (unwrapped: the phase is a
        parameter of the fit, not the angle of a complex number), mean over the
        scanned area removed.
    probe : ndarray of complex64, shape (Ny, Nx)
        The probe, centred on pixel ``(Ny // 2, Nx // 2)``, sampled as the object.
    object_sampling_A : (float, float)
        Object pixel size (sy, sx), Å: ``1 / (N dk)`` of the detector.
    object_origin_A : (float, float)
        Position (y, x) of the centre of object pixel (0, 0), Å, in the scan's frame
        (the frame of ``scan_origin_A``).
    scan_sampling_A, scan_origin_A : (float, float)
        The scan grid (y, x): scan pixel (i, j) is at ``origin + (i sy, j sx)`` Å.
    scan_shape : (int, int)
        Scan positions (ny, nx).
    loss : ndarray of float64, shape (n_iterations,)
        Convergence log: ``sum (sqrt(I) - |model|)^2 / sum I`` over all positions, per iteration.
    slice_thickness_A : float or None
    settings : dict
        The options of the run (learning rate, batch size, seed ...).
    """

    object: np.ndarray
    phase: np.ndarray
    probe: np.ndarray
    object_sampling_A: tuple
    object_origin_A: tuple
    scan_sampling_A: tuple
    scan_origin_A: tuple
    scan_shape: tuple
    loss: np.ndarray
    slice_thickness_A: float | None = None
    settings: dict = field(default_factory=dict)

    def A_to_object_px(self, xy_A) -> np.ndarray:
        """Positions (x, y) in Å -> object pixel coordinates (x, y) (x = column index)."""
        return A_to_object_px(xy_A, self.object_origin_A, self.object_sampling_A)

    def scan_px_to_object_px(self, xy_px) -> np.ndarray:
        """Scan pixel coordinates (x, y) -> object pixel coordinates (x, y)."""
        return self.A_to_object_px(scan_px_to_A(xy_px, self.scan_origin_A, self.scan_sampling_A))

    def object_px_to_scan_px(self, xy_px) -> np.ndarray:
        """Object pixel coordinates (x, y) -> scan pixel coordinates (x, y)."""
        xy_A = object_px_to_A(xy_px, self.object_origin_A, self.object_sampling_A)
        return A_to_object_px(xy_A, self.scan_origin_A, self.scan_sampling_A)

    def phase_on_scan_grid(self, *, antialias: bool = True) -> np.ndarray:
        """The phase resampled onto the scan grid (:func:`phase_on_scan_grid`), shape ``scan_shape``."""
        return phase_on_scan_grid(self.phase, object_sampling_A=self.object_sampling_A,
                                  object_origin_A=self.object_origin_A, scan_sampling_A=self.scan_sampling_A,
                                  scan_origin_A=self.scan_origin_A, scan_shape=self.scan_shape, antialias=antialias)


def scan_px_to_A(xy_px, scan_origin_A, scan_sampling_A) -> np.ndarray:
    """Scan pixel coordinates (x, y) -> positions (x, y), Å.  Origin and sampling are (y, x)."""
    xy = np.asarray(xy_px, dtype=np.float64)
    oy, ox = as_pair(scan_origin_A)
    sy, sx = as_pair(scan_sampling_A)
    return np.stack([ox + xy[..., 0] * sx, oy + xy[..., 1] * sy], axis=-1)


def A_to_object_px(xy_A, object_origin_A, object_sampling_A) -> np.ndarray:
    """Positions (x, y), Å -> pixel coordinates (x, y) of a grid of (y, x) origin and sampling."""
    xy = np.asarray(xy_A, dtype=np.float64)
    oy, ox = as_pair(object_origin_A)
    sy, sx = as_pair(object_sampling_A)
    return np.stack([(xy[..., 0] - ox) / sx, (xy[..., 1] - oy) / sy], axis=-1)


def object_px_to_A(xy_px, object_origin_A, object_sampling_A) -> np.ndarray:
    """Pixel coordinates (x, y) of a grid of (y, x) origin and sampling -> positions (x, y), Å."""
    return scan_px_to_A(xy_px, object_origin_A, object_sampling_A)


def phase_on_scan_grid(phase: np.ndarray, *, object_sampling_A, object_origin_A, scan_sampling_A, scan_origin_A,
                       scan_shape, antialias: bool = True) -> np.ndarray:
    """Resample an object-grid image onto the scan grid (same pixel coordinates as the virtual images and the truth).

    Each scan pixel is mapped to the object grid through its calibrated position
    (:func:`scan_px_to_A`, :func:`A_to_object_px`) and the image is interpolated
    there (cubic spline).  With ``antialias`` the image is first smoothed by a
    Gaussian of sigma ``(step / object sampling - 1) / 2`` object pixels per axis
    (as :func:`skimage.transform.rescale`), so a finer object grid does not alias.

    Returns
    -------
    ndarray of float32, shape ``scan_shape``
    """
    from scipy import ndimage

    image = np.asarray(phase, dtype=np.float64)
    ratio = np.array(as_pair(scan_sampling_A)) / np.array(as_pair(object_sampling_A))
    if antialias and np.any(ratio > 1):
        image = ndimage.gaussian_filter(image, sigma=np.maximum(ratio - 1, 0) / 2, mode="nearest")
    ny, nx = scan_shape
    jj, ii = np.meshgrid(np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64))
    xy = A_to_object_px(scan_px_to_A(np.stack([jj, ii], axis=-1), scan_origin_A, scan_sampling_A),
                        object_origin_A, object_sampling_A)
    return ndimage.map_coordinates(image, [xy[..., 1], xy[..., 0]], order=3, mode="nearest").astype(np.float32)


def _reciprocal_sampling(reciprocal_sampling_per_A, angular_sampling_mrad, energy_keV) -> tuple[float, float]:
    if (reciprocal_sampling_per_A is None) == (angular_sampling_mrad is None):
        raise AtomlocInputError("reconstruct_ptycho: give exactly one of reciprocal_sampling_per_A and "
                                "angular_sampling_mrad")
    if reciprocal_sampling_per_A is not None:
        dk = as_pair(reciprocal_sampling_per_A)
    else:
        wavelength = electron_wavelength_A(energy_keV)
        dk = tuple(a * 1e-3 / wavelength for a in as_pair(angular_sampling_mrad))
    if not all(np.isfinite(dk)) or min(dk) <= 0:
        raise AtomlocInputError(f"reconstruct_ptycho: detector sampling must be > 0 (got {dk})")
    return dk


def _check_data(data) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 4:
        raise AtomlocInputError(f"reconstruct_ptycho: data must be [ny_scan, nx_scan, ky, kx], got shape {data.shape}")
    if min(data.shape) < 2:
        raise AtomlocInputError(f"reconstruct_ptycho: data has an axis shorter than 2 (shape {data.shape})")
    if not np.all(np.isfinite(data)):
        raise AtomlocInputError("reconstruct_ptycho: data holds NaN or infinite values")
    if data.min() < 0:
        raise AtomlocInputError("reconstruct_ptycho: data holds negative intensities")
    if not data.sum() > 0:
        raise AtomlocInputError("reconstruct_ptycho: data is all zero")
    return data


def object_grid(scan_shape, scan_sampling_A, scan_origin_A, object_sampling_A, window_px, pad_px: int = 2):
    """The object grid that holds every probe window of a scan.

    Returns
    -------
    shape : (int, int)
        Object shape (H, W).
    origin_A : (float, float)
        Position (y, x) of object pixel (0, 0), Å: the first scan position lies at
        object pixel ``window // 2 + pad`` along each axis.
    """
    ny, nx = scan_shape
    sy, sx = as_pair(scan_sampling_A)
    oy, ox = as_pair(scan_origin_A)
    osy, osx = as_pair(object_sampling_A)
    wy, wx = window_px
    origin = (oy - (wy // 2 + pad_px) * osy, ox - (wx // 2 + pad_px) * osx)
    h = int(np.ceil((ny - 1) * sy / osy)) + wy + 2 * pad_px + 1
    w = int(np.ceil((nx - 1) * sx / osx)) + wx + 2 * pad_px + 1
    return (h, w), origin


def _kz_penalty(phase, beta: float):
    """Mean power of the slice-stack phase in the missing wedge ``|kz| > beta |k_r|`` (3-D FFT)."""
    import torch

    s, h, w = phase.shape
    kz = torch.fft.fftfreq(s, device=phase.device)[:, None, None]
    ky = torch.fft.fftfreq(h, device=phase.device)[None, :, None]
    kx = torch.fft.fftfreq(w, device=phase.device)[None, None, :]
    wedge = (kz.abs() > beta * torch.sqrt(kx ** 2 + ky ** 2)).to(phase.dtype)
    spectrum = torch.fft.fftn(phase - phase.mean(dim=(-2, -1), keepdim=True), norm="ortho")
    return (wedge * spectrum.abs() ** 2).sum() / phase.numel()


def reconstruct_ptycho(data, *, scan_sampling_A, energy_keV: float, semiangle_mrad: float,
                       reciprocal_sampling_per_A=None, angular_sampling_mrad=None, scan_origin_A=(0.0, 0.0),
                       defocus_A: float = 0.0, n_slices: int = 1, slice_thickness_A: float | None = None,
                       n_iterations: int = 10, batch_size: int = 64, learning_rate: float = 0.02,
                       probe_learning_rate: float | None = None, fixed_probe_iterations: int = 2,
                       lr_schedule: str = "cosine", pure_phase: bool = False, kz_regularization: float = 0.0,
                       kz_beta: float = 1.0,
                       pad_px: int = 2, device: str = "cpu", seed: int = 0, progress: bool = False) -> PtychoResult:
    """Reconstruct the object phase (and the probe) from a 4D-STEM scan.

    Parameters
    ----------
    data : array, shape (ny_scan, nx_scan, ky, kx)
        Diffraction intensities (counts), zero angle at pixel ``(ky // 2, kx // 2)``
        (:mod:`atomloc.ptycho.model`).
    scan_sampling_A : float or (float, float)
        Scan step (sy, sx), Å: the real step of the scan (abTEM's ``scan.sampling``).
    energy_keV, semiangle_mrad : float
        Beam energy (keV) and convergence semi-angle (mrad) of the initial probe.
    reciprocal_sampling_per_A, angular_sampling_mrad : float or (float, float)
        Detector calibration (y, x): 1/Å per pixel or mrad per pixel; give exactly one.
    scan_origin_A : (float, float)
        Position (y, x) of the first scan position, Å.
    defocus_A : float
        Defocus of the initial probe, Å (abTEM's sign: positive = underfocus).  For
        ``n_slices > 1`` it is the defocus at the entrance surface (slice 0).
    n_slices : int
        Object slices (1: single-slice ptychography; > 1: multislice).
    slice_thickness_A : float, optional
        Distance between slices, Å (needed when ``n_slices > 1``).
    n_iterations : int
        Passes over all probe positions.
    batch_size : int
        Probe positions per Adam step (random order each pass, drawn from ``seed``).
    learning_rate : float
        Adam step of the object's phase and log-amplitude, rad per step.
    probe_learning_rate : float, optional
        Adam step of the probe (relative to its peak amplitude); default
        ``learning_rate / 4``; 0 keeps the initial probe.
    fixed_probe_iterations : int
        Passes at the start during which the probe is not updated.
    lr_schedule : str
        ``"cosine"``: the learning rates fall along a half cosine to 5 % of their
        start over the run (Adam's late steps stop jittering around the minimum);
        ``"constant"``.
    pure_phase : bool
        Fit the phase only (the amplitude stays 1).
    kz_regularization, kz_beta : float
        Multislice only: weight of a missing-wedge penalty, the power of the phase
        stack's 3-D spectrum where ``|kz| > kz_beta |k_r|`` (frequencies in cycles per
        pixel / per slice), which the data barely constrain; 0 turns it off.
    pad_px : int
        Object pixels beyond the probe windows on every side.
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ...).
    seed : int
        Seed of the mini-batch order.
    progress : bool
        Show a tqdm bar over the iterations.

    Returns
    -------
    PtychoResult

    Raises
    ------
    AtomlocInputError
        Naming the parameter: data not 4-D, NaN, negative or all zero; calibration
        missing or not positive; ``n_slices > 1`` without ``slice_thickness_A``;
        iterations or batch size < 1.
    """
    import torch

    data = _check_data(data)
    dk = _reciprocal_sampling(reciprocal_sampling_per_A, angular_sampling_mrad, energy_keV)
    scan_sampling_A = as_pair(scan_sampling_A)
    scan_origin_A = as_pair(scan_origin_A)
    if min(scan_sampling_A) <= 0:
        raise AtomlocInputError(f"reconstruct_ptycho: scan_sampling_A must be > 0 (got {scan_sampling_A})")
    if int(n_slices) < 1:
        raise AtomlocInputError(f"reconstruct_ptycho: n_slices must be >= 1 (got {n_slices})")
    if n_slices > 1 and not (slice_thickness_A is not None and slice_thickness_A > 0):
        raise AtomlocInputError("reconstruct_ptycho: slice_thickness_A > 0 is needed when n_slices > 1")
    if int(n_iterations) < 1 or int(batch_size) < 1:
        raise AtomlocInputError(f"reconstruct_ptycho: n_iterations and batch_size must be >= 1 "
                                f"(got {n_iterations}, {batch_size})")
    if not learning_rate > 0:
        raise AtomlocInputError(f"reconstruct_ptycho: learning_rate must be > 0 (got {learning_rate})")
    if lr_schedule not in ("cosine", "constant"):
        raise AtomlocInputError(f"reconstruct_ptycho: lr_schedule must be 'cosine' or 'constant' (got {lr_schedule!r})")
    probe_lr = learning_rate / 4 if probe_learning_rate is None else float(probe_learning_rate)

    ny_scan, nx_scan, wy, wx = data.shape
    window = (wy, wx)
    obj_sampling = (1.0 / (wy * dk[0]), 1.0 / (wx * dk[1]))
    shape, obj_origin = object_grid((ny_scan, nx_scan), scan_sampling_A, scan_origin_A, obj_sampling, window, pad_px)

    # Probe centres in object pixels (y, x), scan order (row-major).
    ii, jj = np.meshgrid(np.arange(ny_scan), np.arange(nx_scan), indexing="ij")
    centres = np.stack([(scan_origin_A[0] + ii.ravel() * scan_sampling_A[0] - obj_origin[0]) / obj_sampling[0],
                        (scan_origin_A[1] + jj.ravel() * scan_sampling_A[1] - obj_origin[1]) / obj_sampling[1]], axis=1)
    corners, shifts = window_corners(centres, window)

    dev = torch.device(device)
    amplitudes = torch.as_tensor(np.sqrt(data.reshape(-1, wy, wx).astype(np.float32)), device=dev)
    corners_t = torch.as_tensor(corners, device=dev)
    shifts_t = torch.as_tensor(shifts, dtype=torch.float32, device=dev)
    total_intensity = float(data.reshape(len(centres), -1).sum(axis=1).mean())
    probe0 = initial_probe(window, dk, energy_keV, semiangle_mrad, defocus_A, total_intensity)
    probe = torch.nn.Parameter(torch.as_tensor(probe0.astype(np.complex64), device=dev))
    phase = torch.nn.Parameter(torch.zeros((n_slices, *shape), dtype=torch.float32, device=dev))
    log_amp = torch.nn.Parameter(torch.zeros((n_slices, *shape), dtype=torch.float32, device=dev))
    propagator = None
    if n_slices > 1:
        propagator = torch.as_tensor(fresnel_propagator(window, dk, energy_keV, slice_thickness_A).astype(np.complex64),
                                     device=dev)
    groups = [{"params": [phase], "lr": learning_rate}]
    if not pure_phase:
        groups.append({"params": [log_amp], "lr": learning_rate})
    probe_scale = float(np.abs(probe0).max())
    if probe_lr > 0:
        groups.append({"params": [probe], "lr": probe_lr * probe_scale})
    optimiser = torch.optim.Adam(groups)
    for g in optimiser.param_groups:
        g["initial_lr"] = g["lr"]
    generator = torch.Generator().manual_seed(int(seed))
    total = float(amplitudes.pow(2).sum())
    n = len(centres)
    losses = []
    iterations = range(int(n_iterations))
    if progress:
        from tqdm import tqdm

        iterations = tqdm(iterations, desc="ptychography", unit="iter")
    for it in iterations:
        learn_probe = probe_lr > 0 and it >= fixed_probe_iterations
        probe.requires_grad_(learn_probe)
        if lr_schedule == "cosine":
            factor = 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * it / max(int(n_iterations) - 1, 1)))
            for g in optimiser.param_groups:
                g["lr"] = g["initial_lr"] * factor
        order = torch.randperm(n, generator=generator).to(dev)
        epoch = 0.0
        for start in range(0, n, int(batch_size)):
            idx = order[start:start + int(batch_size)]
            optimiser.zero_grad(set_to_none=True)
            transmission = torch.polar(torch.exp(log_amp), phase) if not pure_phase else torch.polar(
                torch.ones_like(phase), phase)
            windows = object_windows(transmission if n_slices > 1 else transmission[0], corners_t[idx], window)
            psi = exit_waves(shift_probes(probe, shifts_t[idx]), windows, propagator)
            residual = diffraction_amplitudes(psi) - amplitudes[idx]
            loss = residual.pow(2).sum()
            objective = loss / total * (n / len(idx))
            if n_slices > 1 and kz_regularization > 0:
                objective = objective + kz_regularization * _kz_penalty(phase, kz_beta)
            objective.backward()
            if not learn_probe:
                probe.grad = None
            optimiser.step()
            epoch += float(loss.detach())
        losses.append(epoch / total)
        if progress:
            iterations.set_postfix(loss=f"{losses[-1]:.4g}")

    with torch.no_grad():
        obj = torch.polar(torch.exp(log_amp) if not pure_phase else torch.ones_like(phase), phase)
        obj_np = obj.cpu().numpy().astype(np.complex64)
        total_phase = phase.sum(dim=0).cpu().numpy().astype(np.float64)
        probe_np = probe.detach().cpu().numpy().astype(np.complex64)
    # Remove the arbitrary constant: the mean over the scanned area (the rectangle of probe centres).
    ys, xs = centres[:, 0], centres[:, 1]
    inner = total_phase[int(np.floor(ys.min())):int(np.ceil(ys.max())) + 1,
                        int(np.floor(xs.min())):int(np.ceil(xs.max())) + 1]
    total_phase -= inner.mean()
    settings = {"n_iterations": int(n_iterations), "batch_size": int(batch_size), "learning_rate": float(learning_rate),
                "probe_learning_rate": probe_lr, "lr_schedule": lr_schedule,
                "fixed_probe_iterations": int(fixed_probe_iterations), "pure_phase": bool(pure_phase),
                "n_slices": int(n_slices), "kz_regularization": float(kz_regularization),
                "kz_beta": float(kz_beta), "energy_keV": float(energy_keV), "semiangle_mrad": float(semiangle_mrad),
                "defocus_A": float(defocus_A), "reciprocal_sampling_per_A": dk, "device": str(device),
                "seed": int(seed)}
    return PtychoResult(object=obj_np, phase=total_phase.astype(np.float32), probe=probe_np,
                        object_sampling_A=obj_sampling, object_origin_A=obj_origin, scan_sampling_A=scan_sampling_A,
                        scan_origin_A=scan_origin_A, scan_shape=(ny_scan, nx_scan), loss=np.array(losses),
                        slice_thickness_A=None if n_slices == 1 else float(slice_thickness_A), settings=settings)
