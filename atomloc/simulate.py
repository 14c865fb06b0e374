"""Simulated HAADF-STEM image series with known column positions.

The linear imaging model: every projected column is a narrow Gaussian (width
``column_sigma_A``, thermal and residual blur) weighted by the sum of Z**n of its
atoms, convolved with a Gaussian probe of FWHM ``probe_fwhm_A``.  The convolution
of two Gaussians is a Gaussian, so each column is rendered exactly at its
sub-pixel position by point sampling (a STEM image samples the probe at the
scan positions).  Counts are Poisson at the frame's dose, plus Gaussian read
noise.  Frames of one series differ by a random rigid drift (a random walk), a
slow non-rigid drift within each frame (row-wise shifts along the slow-scan
axis: linear creep plus a smooth random field, applied while sampling) and a
log-uniform random dose.

Coordinates: pixel (row i, column j) samples the specimen at
(x, y) = (j, i) * pixel size; truth positions are returned in pixels with the
same convention (x = column index, centre of pixel (0, 0) at (0.0, 0.0)).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from atomloc.settings import FromMapping
from atomloc.structures import MATERIALS, build_atoms, project_columns, tile_columns

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class SeriesSpec(FromMapping):
    """Parameters of one simulated series (one region, several frames).

    Defaults equal those of ``config.yaml`` / the config schema.

    Attributes
    ----------
    material : str
        Structure name, one of :data:`atomloc.structures.MATERIALS`.
    shape_px : tuple of int
        Frame shape (H, W) in pixels.
    pixel_size_pm : float
        Pixel size in pm.
    n_frames : int
        Frames per series.
    rotation_deg : float
        In-plane rotation of the lattice, degrees counter-clockwise.
    probe_fwhm_A : float
        FWHM of the Gaussian probe intensity, Å.
    column_sigma_A : float
        Gaussian sigma of each column before the probe (thermal blur), Å.
    z_exponent : float
        Column weight is the sum over its atoms of Z**z_exponent.
    dose_e_per_A2 : tuple of float
        (min, max) of the log-uniform per-frame dose, electrons per Å².
    collection_fraction : float
        Fraction of the incident electrons collected at the centre of the
        heaviest column type.
    background_fraction : float
        Fraction collected everywhere (support film, inelastic background).
    read_noise_counts : float
        Standard deviation of the Gaussian read noise, counts.
    drift_px_per_frame : float
        Standard deviation of the per-frame rigid drift step along x and y, px.
    scan_creep_px : float
        Standard deviation, per frame and axis, of the linear creep within a
        frame: the shift of the last scan row relative to the first, px.
    scan_wobble_px : float
        Standard deviation of a smooth random row-wise shift within a frame
        (per axis), px.
    scan_wobble_rows : float
        Correlation length of that random shift along the slow-scan axis, rows.
    seed : int
        Seed of every random draw of the series.
    """

    config_name: ClassVar[str] = "dataset"

    material: str = "MoS2"
    shape_px: tuple = (256, 256)
    pixel_size_pm: float = 20.0
    n_frames: int = 4
    rotation_deg: float = 0.0
    probe_fwhm_A: float = 0.8
    column_sigma_A: float = 0.1
    z_exponent: float = 1.5
    dose_e_per_A2: tuple = field(default=(2.0e4, 2.0e5))
    collection_fraction: float = 0.05
    background_fraction: float = 0.005
    read_noise_counts: float = 0.5
    drift_px_per_frame: float = 2.0
    scan_creep_px: float = 0.8
    scan_wobble_px: float = 0.25
    scan_wobble_rows: float = 24.0
    seed: int = 0

    def check(self, name: str = "dataset") -> None:
        """Raise :class:`AtomlocInputError` naming the key of any value out of range."""
        bad = functools.partial(self._out_of_range, name)

        if self.material not in MATERIALS:
            bad("material", f"must be one of {', '.join(MATERIALS)}")
        if len(self.shape_px) != 2 or min(self.shape_px) < 16:
            bad("shape_px", "must be two integers >= 16")
        for key in ("pixel_size_pm", "probe_fwhm_A"):
            if not getattr(self, key) > 0:
                bad(key, "must be > 0")
        if self.n_frames < 1:
            bad("n_frames", "must be >= 1")
        lo, hi = self.dose_e_per_A2
        if not 0 < lo <= hi:
            bad("dose_e_per_A2", "must be [min, max] with 0 < min <= max")
        if not 0 < self.collection_fraction <= 1:
            bad("collection_fraction", "must be in (0, 1]")
        for key in ("column_sigma_A", "background_fraction", "read_noise_counts", "drift_px_per_frame",
                    "scan_creep_px", "scan_wobble_px"):
            if getattr(self, key) < 0:
                bad(key, "must be >= 0")
        if not self.scan_wobble_rows > 0:
            bad("scan_wobble_rows", "must be > 0")


def render_columns(shape_px, x_px: np.ndarray, y_px: np.ndarray, amplitude: np.ndarray,
                   sigma_px: float, row_shift_px: np.ndarray | None = None) -> np.ndarray:
    """Sum of isotropic Gaussians point-sampled on a pixel grid.

    Parameters
    ----------
    shape_px : (int, int)
        Output shape (H, W).
    x_px, y_px : ndarray, shape (m,)
        Centres in pixels (x = column index).
    amplitude : ndarray, shape (m,)
        Peak value of each Gaussian.
    sigma_px : float
        Gaussian sigma in pixels.
    row_shift_px : ndarray, shape (H, 2), optional
        Scan distortion: the probe of scan row i lands ``(dx, dy) = row_shift_px[i]``
        pixels short of its nominal position, so a point at (x, y) is imaged in row
        i where i - dy(i) = y, at x + dx(i) (see :func:`distorted_positions`).

    Returns
    -------
    ndarray of float64, shape (H, W)
    """
    h, w = shape_px
    x_px = np.asarray(x_px, dtype=np.float64)
    y_px = np.asarray(y_px, dtype=np.float64)
    shift = np.zeros((h, 2)) if row_shift_px is None else np.asarray(row_shift_px, dtype=np.float64)
    margin = int(np.ceil(np.abs(shift).max())) + 1 if row_shift_px is not None else 0
    radius = int(np.ceil(5.0 * sigma_px)) + margin
    offsets = np.arange(-radius, radius + 1)
    cx = np.rint(x_px + shift[:, 0].mean()).astype(np.int64)
    cy = np.rint(y_px + shift[:, 1].mean()).astype(np.int64)
    ix = cx[:, None] + offsets[None, :]  # (m, k)
    iy = cy[:, None] + offsets[None, :]
    row = np.clip(iy, 0, h - 1)
    gy = np.exp(-0.5 * ((iy - shift[row, 1] - y_px[:, None]) / sigma_px) ** 2) * amplitude[:, None]
    gx = np.exp(-0.5 * ((ix[:, None, :] - shift[row, 0][:, :, None] - x_px[:, None, None]) / sigma_px) ** 2)
    vals = gy[:, :, None] * gx  # (m, ky, kx)
    valid = ((iy >= 0) & (iy < h))[:, :, None] & ((ix >= 0) & (ix < w))[:, None, :]
    flat = (iy[:, :, None] * w + ix[:, None, :])[valid]
    return np.bincount(flat, weights=vals[valid], minlength=h * w).reshape(h, w)


def distorted_positions(x_px: np.ndarray, y_px: np.ndarray, row_shift_px: np.ndarray, n_iter: int = 20):
    """Where points at (x, y) appear in a frame scanned with row-wise shifts.

    Solves i - dy(i) = y for the (continuous) row i by fixed-point iteration,
    with dy interpolated linearly between rows (and held constant beyond the
    first and last row); the point then appears at (x + dx(i), i).

    Parameters
    ----------
    x_px, y_px : ndarray, shape (m,)
        Undistorted positions, pixels.
    row_shift_px : ndarray, shape (H, 2)
        (dx, dy) of each scan row, pixels (as in :func:`render_columns`).

    Returns
    -------
    x, y : ndarray, shape (m,)
    """
    rows = np.arange(len(row_shift_px), dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    i = y.copy()
    for _ in range(n_iter):
        i = y + np.interp(i, rows, row_shift_px[:, 1])
    return np.asarray(x_px, dtype=np.float64) + np.interp(i, rows, row_shift_px[:, 0]), i


def scan_distortion(n_rows: int, creep_px: float, wobble_px: float, wobble_rows: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Random slow-scan distortion of one frame: row-wise (dx, dy) shifts in pixels.

    A linear creep (shift of the last row relative to the first drawn from
    N(0, creep_px) per axis) plus a smooth random field (white noise along the
    rows smoothed by a Gaussian of ``wobble_rows`` rows, scaled to standard
    deviation ``wobble_px``); the mean over rows is removed, so the rigid drift
    of the frame stays its mean shift.

    Returns
    -------
    ndarray, shape (n_rows, 2)
    """
    from scipy.ndimage import gaussian_filter1d

    t = np.linspace(-0.5, 0.5, n_rows)[:, None]
    shift = t * rng.normal(0.0, creep_px, size=(1, 2))
    noise = gaussian_filter1d(rng.standard_normal((n_rows, 2)), wobble_rows, axis=0, mode="reflect")
    std = noise.std(axis=0)
    shift = shift + wobble_px * noise / np.where(std > 0, std, 1.0)
    return shift - shift.mean(axis=0)


def scan_jitter(n_rows: int, sigma_px: float, rng: np.random.Generator, cycles_per_frame: float | None = None
                ) -> np.ndarray:
    """Scan-line jitter of one frame: row-wise (dx, dy) offsets in pixels.

    The TEMImageNet noise model: row i is displaced by
    ``N(0, 1) * sigma_px * sin(2 pi f t_i + phi)`` along x and y independently,
    constant along the fast-scan direction, with ``t_i = i / n_rows``, a random
    phase ``phi`` and ``f`` cycles per frame (random in [1, 8) unless given).
    The result is used as ``row_shift_px`` of :func:`render_columns` (applied
    while sampling, not as a post-warp).

    Returns
    -------
    ndarray, shape (n_rows, 2)
    """
    t = np.arange(n_rows)[:, None] / n_rows
    f = rng.uniform(1.0, 8.0) if cycles_per_frame is None else cycles_per_frame
    phase = rng.uniform(0, 2 * np.pi, size=(1, 2))
    return rng.standard_normal((n_rows, 2)) * sigma_px * np.sin(2 * np.pi * f * t + phase)


def simulate_series(spec: SeriesSpec) -> dict:
    """Render a series of frames of one region with the linear imaging model.

    Parameters
    ----------
    spec : SeriesSpec

    Returns
    -------
    dict
        ``frames`` float32 [n, H, W] in detector counts; ``dose_e_per_A2`` [n];
        ``drift_px`` [n, 2] true rigid drift (x, y) in pixels, frame 0 at (0, 0);
        ``scan_shift_px`` [n, H, 2] the within-frame row-wise scan distortion
        (:func:`scan_distortion`; zero mean per frame);
        ``truth`` with ``x``, ``y`` [n, m] column positions in each frame's pixels,
        ``element``, ``kind`` [m] and ``weight`` [m]; ``attrs`` for the HDF5 file.
    """
    spec.check()
    rng = np.random.default_rng(spec.seed)
    h, w = spec.shape_px
    px_A = spec.pixel_size_pm / 100.0
    cell = project_columns(build_atoms(spec.material))
    sigma_A = np.hypot(spec.probe_fwhm_A / FWHM_PER_SIGMA, spec.column_sigma_A)
    sigma_px = sigma_A / px_A

    steps = rng.normal(0.0, spec.drift_px_per_frame, size=(spec.n_frames, 2))
    steps[0] = 0.0
    drift_px = np.cumsum(steps, axis=0)
    # Tile a region large enough to stay covered under the drift.
    margin_A = (np.abs(drift_px).max() + 6 * sigma_px + 2) * px_A
    origin_A = rng.uniform(0, 1, size=2) @ cell.cell_A
    xy_A, index = tile_columns(cell, -margin_A, w * px_A + margin_A, -margin_A, h * px_A + margin_A,
                               spec.rotation_deg, origin_A)
    weight = cell.weights(spec.z_exponent)[index]
    amplitude = spec.collection_fraction * weight / cell.weights(spec.z_exponent).max()

    log_lo, log_hi = np.log(spec.dose_e_per_A2)
    dose = np.exp(rng.uniform(log_lo, log_hi, size=spec.n_frames))
    frames = np.empty((spec.n_frames, h, w), dtype=np.float32)
    x_rigid = xy_A[:, 0][None, :] / px_A + drift_px[:, 0:1]
    y_rigid = xy_A[:, 1][None, :] / px_A + drift_px[:, 1:2]
    scan = np.stack([scan_distortion(h, spec.scan_creep_px, spec.scan_wobble_px, spec.scan_wobble_rows, rng)
                     for _ in range(spec.n_frames)])
    x_true = np.empty_like(x_rigid)
    y_true = np.empty_like(y_rigid)
    for k in range(spec.n_frames):
        x_true[k], y_true[k] = distorted_positions(x_rigid[k], y_rigid[k], scan[k])
        fraction = spec.background_fraction + render_columns((h, w), x_rigid[k], y_rigid[k], amplitude, sigma_px,
                                                             row_shift_px=scan[k])
        electrons = dose[k] * px_A ** 2
        counts = rng.poisson(electrons * fraction).astype(np.float64)
        if spec.read_noise_counts > 0:
            counts += rng.normal(0.0, spec.read_noise_counts, size=counts.shape)
        frames[k] = counts
    truth = {"x": x_true, "y": y_true, "element": cell.element[index], "kind": cell.kind[index], "weight": weight}
    attrs = {
        "pixel_size_pm": float(spec.pixel_size_pm),
        "material": spec.material,
        "simulator": "linear-gaussian-probe",
        "seed": int(spec.seed),
        "probe_fwhm_A": float(spec.probe_fwhm_A),
        "column_sigma_px": float(sigma_px),
    }
    return {"frames": frames, "dose_e_per_A2": dose, "drift_px": drift_px, "scan_shift_px": scan, "truth": truth,
            "attrs": attrs}
