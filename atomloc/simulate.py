"""Simulated HAADF-STEM image series with known column positions.

The linear imaging model: every projected column is a point weighted by the sum
of Z**n over its atoms, at its exact sub-pixel position, blurred by a Gaussian
(thermal smearing ``column_sigma_A``, and the incoherent source of FWHM
``source_size_A``) and convolved with the probe intensity |psi|^2 computed by
abTEM (energy, convergence semi-angle, and per frame a random defocus and
2-fold astigmatism).  The point-spread function is computed on a grid of at
most 0.05 Å sampling, integrated over the output pixel (binning), and then
evaluated at every pixel's scan position, so the scan physics acts while
sampling, not as a post-warp.  Frames of one series differ by a random rigid
drift (a random walk), a slow non-rigid drift within each frame (row-wise
shifts along the slow-scan axis: linear creep plus a smooth random field),
scan-line jitter (the TEMImageNet model), a log-uniform random dose and the
probe.  Counts are Poisson at the frame's dose through the detector's
collection fraction, plus Gaussian read noise; contamination (bright diffuse
blobs and a low-frequency field on the specimen) and a linear background ramp
(in scan coordinates) are optional.  Defects (vacancies, substitutional
dopants, voids, a rotated grain) and the aperiodic failure case (single Pt
atoms and clusters on amorphous carbon) are built into the specimen.

``simulator: prism`` or ``multislice`` replaces the linear image of a perfect
crystal by abTEM's PRISM or multislice HAADF image of one (periodic) cell, used
to validate the linear model (:func:`abtem_cell_image`).

Coordinates: pixel (row i, column j) samples the specimen at
(x, y) = (j, i) * pixel size; truth positions are returned in pixels with the
same convention (x = column index, centre of pixel (0, 0) at (0.0, 0.0)).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import ndimage

from atomloc.errors import AtomlocInputError
from atomloc.settings import FromMapping
from atomloc.strain import STRAIN_FIELDS, applied_strain, rotated_lattice_px
from atomloc.structures import (AMORPHOUS, MATERIALS, METALS, amorphous_carbon_atoms, build_atoms, column_label,
                                nearest_column_distance_A, project_columns, single_atoms_on_carbon, tile_columns)

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
SERIES_MATERIALS = (*MATERIALS, AMORPHOUS)
SIMULATORS = ("linear", "prism", "multislice")
MAX_SAMPLING_A = 0.05
"""Coarsest sampling of the point-spread function, Å (the output pixel is binned from it)."""


@dataclass(frozen=True)
class SeriesSpec(FromMapping):
    """Parameters of one simulated series (one region, several frames).

    Defaults equal those of the config schema.

    Attributes
    ----------
    material : str
        Structure name, one of :data:`SERIES_MATERIALS` (``amorphous_C_atoms``:
        single Pt atoms and small clusters on amorphous carbon).
    shape_px : tuple of int
        Frame shape (H, W) in pixels.
    pixel_size_pm : float
        Pixel size in pm.
    n_frames : int
        Frames per series.
    rotation_deg : float
        In-plane rotation of the lattice, degrees counter-clockwise.
    simulator : str
        ``linear`` (the model above), or ``prism`` / ``multislice`` (abTEM's
        image of a perfect periodic crystal; no defects, not for
        ``amorphous_C_atoms``).
    energy_keV : float
        Beam energy, keV.
    semiangle_mrad : float
        Probe convergence semi-angle, mrad.
    defocus_nm : tuple of float
        (min, max) of the uniform per-frame defocus, nm (positive = underfocus,
        abTEM's sign).
    astigmatism_nm : float
        Largest 2-fold astigmatism, nm: per frame uniform in [0, this] at a
        uniform random angle.
    source_size_A : float
        FWHM of the Gaussian source-size blur, Å.
    column_sigma_A : float
        Gaussian sigma of each column before the probe (thermal blur), Å.
    z_exponent : float
        Column weight is the sum over its atoms of Z**z_exponent.
    dose_e_per_A2 : tuple of float
        (min, max) of the log-uniform per-frame dose, electrons per Å².
    collection_fraction : float
        Fraction of the incident electrons collected at the centre of the
        heaviest column type of the pristine specimen, in focus.
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
    scan_jitter_px : float
        Amplitude of the TEMImageNet scan-line jitter (:func:`scan_jitter`), px.
    contamination_blobs : int
        Number of bright diffuse contamination blobs on the specimen.
    contamination_fraction : float
        Collected fraction at a blob's centre, and the peak-to-peak amplitude
        of the low-frequency contamination field (0 = no contamination).
    contamination_radius_A : tuple of float
        (min, max) of the uniform blob radius (Gaussian sigma), Å.
    ramp_fraction : float
        Collected fraction added across the frame by a linear ramp in a random
        direction (scan coordinates, fixed for the series).
    metal_vacancy_rate, chalcogen_vacancy_rate : float
        Probability that a metal / non-metal atom is missing.
    dopant_element : str
        Chemical symbol substituted on metal sites ("" = none).
    dopant_rate : float
        Probability that a metal atom is the dopant.
    void_count : int
        Number of voids (all columns removed inside a disc).
    void_radius_A : tuple of float
        (min, max) of the uniform void radius, Å.
    grain_radius_A : float
        Radius of a disc-shaped grain rotated by ``grain_rotation_deg``
        (0 = none), Å.
    grain_rotation_deg : float
        Rotation of that grain relative to the host lattice, degrees.
    strain_field : str
        Strain applied to the specimen (:func:`atomloc.strain.applied_strain`):
        ``none``, ``uniform`` (biaxial), ``gradient`` (``eps_xx`` linear
        along x) or ``bulge`` (Gaussian dilation around the field's centre).
    strain_magnitude : float
        Its magnitude (dimensionless, e.g. 0.02 = 2 %).
    strain_radius_A : float
        Radius (Gaussian sigma) of the bulge, Å.
    seed : int
        Seed of every random draw of the series.
    """

    config_name: ClassVar[str] = "dataset"

    material: str = "MoS2"
    shape_px: tuple = (256, 256)
    pixel_size_pm: float = 20.0
    n_frames: int = 10
    rotation_deg: float = 0.0
    simulator: str = "linear"
    energy_keV: float = 300.0
    semiangle_mrad: float = 25.0
    defocus_nm: tuple = field(default=(-2.0, 2.0))
    astigmatism_nm: float = 1.0
    source_size_A: float = 0.5
    column_sigma_A: float = 0.1
    z_exponent: float = 1.5
    dose_e_per_A2: tuple = field(default=(1.0e3, 1.0e5))
    collection_fraction: float = 0.05
    background_fraction: float = 0.005
    read_noise_counts: float = 0.5
    drift_px_per_frame: float = 2.0
    scan_creep_px: float = 0.8
    scan_wobble_px: float = 0.25
    scan_wobble_rows: float = 24.0
    scan_jitter_px: float = 0.1
    contamination_blobs: int = 0
    contamination_fraction: float = 0.0
    contamination_radius_A: tuple = field(default=(10.0, 40.0))
    ramp_fraction: float = 0.0
    metal_vacancy_rate: float = 0.0
    chalcogen_vacancy_rate: float = 0.0
    dopant_element: str = ""
    dopant_rate: float = 0.0
    void_count: int = 0
    void_radius_A: tuple = field(default=(5.0, 15.0))
    grain_radius_A: float = 0.0
    grain_rotation_deg: float = 15.0
    strain_field: str = "none"
    strain_magnitude: float = 0.02
    strain_radius_A: float = 20.0
    seed: int = 0

    @property
    def has_defects(self) -> bool:
        return bool(self.metal_vacancy_rate or self.chalcogen_vacancy_rate or self.dopant_rate or self.void_count
                    or self.grain_radius_A)

    def check(self, name: str = "dataset") -> None:
        """Raise :class:`AtomlocInputError` naming the key of any value out of range."""
        from ase.data import atomic_numbers

        bad = functools.partial(self._out_of_range, name)

        if self.material not in SERIES_MATERIALS:
            bad("material", f"must be one of {', '.join(SERIES_MATERIALS)}")
        if self.simulator not in SIMULATORS:
            bad("simulator", f"must be one of {', '.join(SIMULATORS)}")
        if self.simulator != "linear" and (self.material == AMORPHOUS or self.has_defects
                                           or self.strain_field != "none"):
            bad("simulator", "prism and multislice simulate a perfect periodic crystal: no defects, no strain, "
                             f"not {AMORPHOUS}")
        if self.strain_field not in STRAIN_FIELDS:
            bad("strain_field", f"must be one of {', '.join(STRAIN_FIELDS)}")
        if self.strain_field != "none" and self.material == AMORPHOUS:
            bad("strain_field", f"needs a crystal, not {AMORPHOUS}")
        if not -0.2 <= self.strain_magnitude <= 0.2:
            bad("strain_magnitude", "must be in [-0.2, 0.2]")
        if not self.strain_radius_A > 0:
            bad("strain_radius_A", "must be > 0")
        if len(self.shape_px) != 2 or min(self.shape_px) < 16:
            bad("shape_px", "must be two integers >= 16")
        for key in ("pixel_size_pm", "energy_keV", "semiangle_mrad"):
            if not getattr(self, key) > 0:
                bad(key, "must be > 0")
        if self.n_frames < 1:
            bad("n_frames", "must be >= 1")
        lo, hi = self.dose_e_per_A2
        if not 0 < lo <= hi:
            bad("dose_e_per_A2", "must be [min, max] with 0 < min <= max")
        for key in ("defocus_nm", "contamination_radius_A", "void_radius_A"):
            lo, hi = getattr(self, key)
            if not lo <= hi:
                bad(key, "must be [min, max] with min <= max")
        for key in ("contamination_radius_A", "void_radius_A"):
            if not getattr(self, key)[0] > 0:
                bad(key, "must be > 0")
        if not 0 < self.collection_fraction <= 1:
            bad("collection_fraction", "must be in (0, 1]")
        for key in ("metal_vacancy_rate", "chalcogen_vacancy_rate", "dopant_rate"):
            if not 0 <= getattr(self, key) <= 1:
                bad(key, "must be in [0, 1]")
        if self.dopant_element and self.dopant_element not in atomic_numbers:
            bad("dopant_element", "must be a chemical symbol or empty")
        if self.dopant_rate > 0 and not self.dopant_element:
            bad("dopant_rate", "needs dopant_element")
        for key in ("column_sigma_A", "background_fraction", "read_noise_counts", "drift_px_per_frame",
                    "scan_creep_px", "scan_wobble_px", "scan_jitter_px", "astigmatism_nm", "source_size_A",
                    "contamination_blobs", "contamination_fraction", "ramp_fraction", "void_count",
                    "grain_radius_A"):
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


def render_psf(shape_px, x_px: np.ndarray, y_px: np.ndarray, amplitude: np.ndarray, psf: np.ndarray,
               oversample: int, row_shift_px: np.ndarray | None = None, max_points: int = 2 ** 22) -> np.ndarray:
    """Sum of point columns imaged through a tabulated point-spread function, sampled at the scan positions.

    Parameters
    ----------
    shape_px : (int, int)
        Output shape (H, W).
    x_px, y_px : ndarray, shape (m,)
        Column positions in pixels (x = column index).
    amplitude : ndarray, shape (m,)
        Weight of each column (multiplies the table).
    psf : ndarray, shape (n, n)
        Point-spread function sampled at ``1 / oversample`` pixels, centred on
        index ``n // 2`` (:func:`point_spread_function`); zero beyond the table.
    oversample : int
        Table samples per output pixel.
    row_shift_px : ndarray, shape (H, 2), optional
        Scan distortion: the probe of scan row i lands ``(dx, dy) = row_shift_px[i]``
        pixels short of its nominal position (as in :func:`render_columns`).
    max_points : int
        Table look-ups per chunk of columns (bounds memory).

    Returns
    -------
    ndarray of float64, shape (H, W)
        Pixel (i, j) holds the sum over columns of ``amplitude * psf`` at
        (column position - scan position of the pixel), interpolated linearly.
    """
    h, w = shape_px
    x_px = np.asarray(x_px, dtype=np.float64)
    y_px = np.asarray(y_px, dtype=np.float64)
    amplitude = np.asarray(amplitude, dtype=np.float64)
    shift = np.zeros((h, 2)) if row_shift_px is None else np.asarray(row_shift_px, dtype=np.float64)
    centre = np.array(psf.shape) // 2
    radius = int(min(centre) // oversample) + int(np.ceil(np.abs(shift).max())) + 1
    offsets = np.arange(-radius, radius + 1)
    cx = np.rint(x_px + shift[:, 0].mean()).astype(np.int64)
    cy = np.rint(y_px + shift[:, 1].mean()).astype(np.int64)
    out = np.zeros(h * w)
    chunk = max(1, max_points // len(offsets) ** 2)
    for start in range(0, len(x_px), chunk):
        sl = slice(start, start + chunk)
        iy = cy[sl, None] + offsets[None, :]  # (m, k)
        ix = cx[sl, None] + offsets[None, :]
        row = np.clip(iy, 0, h - 1)
        # PSF(column - scan position): the probe at s illuminates the column at r with |psi(r - s)|^2.
        u = (y_px[sl, None] - (iy - shift[row, 1])) * oversample + centre[0]  # (m, k)
        v = (x_px[sl, None, None] - (ix[:, None, :] - shift[row, 0][:, :, None])) * oversample + centre[1]
        u = np.broadcast_to(u[:, :, None], v.shape)
        vals = ndimage.map_coordinates(psf, [u.ravel(), v.ravel()], order=1, mode="constant", cval=0.0)
        vals = vals.reshape(v.shape) * amplitude[sl, None, None]
        valid = ((iy >= 0) & (iy < h))[:, :, None] & ((ix >= 0) & (ix < w))[:, None, :]
        flat = (iy[:, :, None] * w + ix[:, None, :])[valid]
        out += np.bincount(flat, weights=vals[valid], minlength=h * w)
    return out.reshape(h, w)


def _column_label(numbers) -> tuple[str, str]:
    from ase.data import chemical_symbols

    return column_label(chemical_symbols[z] for z in numbers)


def _is_metal(z: int) -> bool:
    from ase.data import chemical_symbols

    return chemical_symbols[z] in METALS


def specimen_columns(spec: SeriesSpec, xmin_A: float, xmax_A: float, ymin_A: float, ymax_A: float,
                     fov_A: tuple, rng: np.random.Generator) -> dict:
    """The projected columns of a series' specimen over a rectangle, defects included.

    Parameters
    ----------
    spec : SeriesSpec
        Material, rotation and defect settings.
    xmin_A, xmax_A, ymin_A, ymax_A : float
        Rectangle to fill, Å (the field of view plus a margin).
    fov_A : (float, float)
        Width and height of the field of view, Å (voids and the grain are
        placed inside it).
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``xy_A`` (m, 2) positions, Å; ``atomic_numbers`` list of tuples;
        ``labelled`` (m,) bool (False for the amorphous-carbon film);
        ``occupancy`` (m,) atoms present / atoms of the pristine column;
        ``reference_weight``: the weight (sum of Z**n) of the heaviest
        pristine column type; ``origin_A`` (periodic specimens): where the
        lattice origin was put, Å.
    """
    n = spec.z_exponent
    if spec.material == AMORPHOUS:
        size = max(xmax_A - xmin_A, ymax_A - ymin_A)
        xy, zs, labelled = single_atoms_on_carbon(size, rng)
        xy = xy + np.array([xmin_A, ymin_A])
        return {"xy_A": xy, "atomic_numbers": list(zs), "labelled": labelled, "occupancy": np.ones(len(xy)),
                "reference_weight": 78.0 ** n}
    cell = project_columns(build_atoms(spec.material))
    origin = rng.uniform(0, 1, size=2) @ cell.cell_A
    xy, index = tile_columns(cell, xmin_A, xmax_A, ymin_A, ymax_A, spec.rotation_deg, origin)
    zs = [cell.atomic_numbers[i] for i in index]
    if spec.grain_radius_A > 0:
        centre = rng.uniform(0.25, 0.75, size=2) * np.asarray(fov_A)
        keep = np.hypot(*(xy - centre).T) > spec.grain_radius_A
        g_origin = centre + rng.uniform(0, 1, size=2) @ cell.cell_A
        gxy, gindex = tile_columns(cell, *(centre[0] + np.array([-1, 1]) * spec.grain_radius_A),
                                   *(centre[1] + np.array([-1, 1]) * spec.grain_radius_A),
                                   spec.rotation_deg + spec.grain_rotation_deg, g_origin)
        inside = np.hypot(*(gxy - centre).T) <= spec.grain_radius_A
        gxy, gindex = gxy[inside], gindex[inside]
        # No two columns closer than 0.8 x the shortest column distance across the boundary.
        from scipy.spatial import cKDTree

        nn = nearest_column_distance_A(cell)
        if keep.any() and len(gxy):
            gap = cKDTree(xy[keep]).query(gxy)[0] >= 0.8 * nn
            gxy, gindex = gxy[gap], gindex[gap]
        xy = np.vstack([xy[keep], gxy])
        zs = [z for z, k in zip(zs, keep) if k] + [cell.atomic_numbers[i] for i in gindex]
    for _ in range(int(spec.void_count)):
        centre = rng.uniform(0, 1, size=2) * np.asarray(fov_A)
        radius = rng.uniform(*spec.void_radius_A)
        keep = np.hypot(*(xy - centre).T) > radius
        xy = xy[keep]
        zs = [z for z, k in zip(zs, keep) if k]
    dopant = 0
    if spec.dopant_element:
        from ase.data import atomic_numbers

        dopant = atomic_numbers[spec.dopant_element]
    new_xy, new_zs, occupancy = [], [], []
    for p, col in zip(xy, zs):
        present = []
        for z in col:
            metal = _is_metal(z)
            if rng.uniform() < (spec.metal_vacancy_rate if metal else spec.chalcogen_vacancy_rate):
                continue
            if metal and dopant and rng.uniform() < spec.dopant_rate:
                z = dopant
            present.append(z)
        if present:
            new_xy.append(p)
            new_zs.append(tuple(present))
            occupancy.append(len(present) / len(col))
    return {"xy_A": np.array(new_xy).reshape(-1, 2), "atomic_numbers": new_zs,
            "labelled": np.ones(len(new_xy), dtype=bool), "occupancy": np.array(occupancy),
            "reference_weight": float(cell.weights(n).max()), "origin_A": origin}


def contamination_field(shape_A: tuple, sampling_A: float, n_blobs: int, fraction: float, radius_A: tuple,
                        rng: np.random.Generator) -> np.ndarray:
    """Contamination on the specimen: bright diffuse blobs plus a low-frequency random field.

    Parameters
    ----------
    shape_A : (float, float)
        Height and width of the area, Å.
    sampling_A : float
        Sampling of the returned grid, Å.
    n_blobs : int
        Number of Gaussian blobs (uniform centres, sigma uniform in ``radius_A``).
    fraction : float
        Collected fraction at a blob's centre, and the peak-to-peak amplitude of
        the random field (a Gaussian-filtered white noise, correlation length a
        quarter of the area).
    radius_A : (float, float)
        Range of the blob sigma, Å.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (ceil(height / sampling) + 1, ceil(width / sampling) + 1)
        Collected fraction, >= 0; row = y, column = x, sample (0, 0) at (0, 0).
    """
    ny, nx = (int(np.ceil(s / sampling_A)) + 1 for s in shape_A)
    yy, xx = np.mgrid[0:ny, 0:nx] * sampling_A
    out = np.zeros((ny, nx))
    for _ in range(int(n_blobs)):
        cy, cx = rng.uniform(0, shape_A[0]), rng.uniform(0, shape_A[1])
        sigma = rng.uniform(*radius_A)
        out += fraction * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
    noise = ndimage.gaussian_filter(rng.standard_normal((ny, nx)), sigma=max(ny, nx) / 4, mode="reflect")
    out += fraction * (noise - noise.min()) / max(float(np.ptp(noise)), 1e-12)
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


def simulate_series(spec: SeriesSpec, return_clean: bool = False) -> dict:
    """Render a series of frames of one region.

    Parameters
    ----------
    spec : SeriesSpec
    return_clean : bool
        Also return ``clean``: the expected counts of each frame (no Poisson or
        read noise).

    Returns
    -------
    dict
        ``frames`` float32 [n, H, W] in detector counts; ``dose_e_per_A2`` [n];
        ``defocus_nm``, ``astigmatism_nm``, ``astigmatism_angle_deg`` [n];
        ``drift_px`` [n, 2] true rigid drift (x, y) in pixels, frame 0 at (0, 0);
        ``scan_shift_px`` [n, H, 2] the smooth within-frame row-wise scan
        distortion (zero mean per frame), which the truth follows;
        ``scan_jitter_px`` [n, H, 2] the scan-line jitter (zero mean per
        frame), applied to the image only: it is noise around the truth;
        ``truth`` with ``x``, ``y`` [n, m] column positions in each frame's pixels,
        ``element``, ``kind``, ``weight`` and ``occupancy`` [m], and
        ``peak_offset_px`` [n, m, 2], the offset of the noise-free image's peak
        from each truth position (:func:`noise_free_peak_offsets`, NaN where
        none), and ``strain`` [m, 3] the applied ``eps_xx, eps_yy, eps_xy`` at
        each column; ``attrs`` for the HDF5 file (crystals: ``lattice_px``,
        the unstrained lattice, rows a and b in pixels).
    """
    spec.check()
    rng = np.random.default_rng(spec.seed)
    h, w = spec.shape_px
    px_A = spec.pixel_size_pm / 100.0

    steps = rng.normal(0.0, spec.drift_px_per_frame, size=(spec.n_frames, 2))
    steps[0] = 0.0
    drift_px = np.cumsum(steps, axis=0)
    # Smooth slow-scan distortion (moves the truth) and line jitter (noise: the truth is the smooth
    # part, since a column spread over rows with independent offsets has no better-defined position).
    scan = np.stack([scan_distortion(h, spec.scan_creep_px, spec.scan_wobble_px, spec.scan_wobble_rows, rng)
                     for _ in range(spec.n_frames)])
    jitter = np.stack([scan_jitter(h, spec.scan_jitter_px, rng) for _ in range(spec.n_frames)])
    jitter -= jitter.mean(axis=1, keepdims=True)  # the rigid drift of a frame stays its mean shift
    defocus = rng.uniform(*spec.defocus_nm, size=spec.n_frames)
    astig = rng.uniform(0.0, spec.astigmatism_nm, size=spec.n_frames)
    astig_angle = rng.uniform(0.0, 180.0, size=spec.n_frames)
    log_lo, log_hi = np.log(spec.dose_e_per_A2)
    dose = np.exp(rng.uniform(log_lo, log_hi, size=spec.n_frames))

    psf0, ov = frame_psf(spec)
    reach_px = psf0.shape[0] / 2 / ov
    margin_A = (np.abs(drift_px).max() + np.abs(scan).max() + np.abs(jitter).max() + reach_px + 2) * px_A
    fov_A = (w * px_A, h * px_A)
    specimen = specimen_columns(spec, -margin_A, fov_A[0] + margin_A, -margin_A, fov_A[1] + margin_A, fov_A, rng)
    xy_A = specimen["xy_A"]
    displacement_A, true_strain = applied_strain(xy_A, (fov_A[0] / 2, fov_A[1] / 2), spec.strain_field,
                                                 spec.strain_magnitude, spec.strain_radius_A, fov_A[0])
    xy_A = xy_A + displacement_A
    weight = np.array([sum(z ** spec.z_exponent for z in col) for col in specimen["atomic_numbers"]])
    # In focus, the heaviest pristine column peaks at collection_fraction.
    amplitude = spec.collection_fraction * weight / specimen["reference_weight"] / psf0.max()

    contamination = None
    if spec.contamination_fraction > 0:
        cont_sampling = 2.0  # Å: the field is smooth on this scale
        size = (fov_A[1] + 2 * margin_A, fov_A[0] + 2 * margin_A)
        contamination = contamination_field(size, cont_sampling, spec.contamination_blobs,
                                            spec.contamination_fraction, spec.contamination_radius_A, rng)
    ramp = 0.0
    if spec.ramp_fraction > 0:
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        plane = np.cos(theta) * xx + np.sin(theta) * yy
        ramp = spec.ramp_fraction * (plane - plane.min()) / max(float(np.ptp(plane)), 1e-12)

    cell_images = None
    if spec.simulator != "linear":
        cell_images = abtem_cell_images(spec.material, spec.simulator, spec.energy_keV, spec.semiangle_mrad,
                                        10.0 * defocus)

    x_rigid = xy_A[:, 0][None, :] / px_A + drift_px[:, 0:1]
    y_rigid = xy_A[:, 1][None, :] / px_A + drift_px[:, 1:2]
    frames = np.empty((spec.n_frames, h, w), dtype=np.float32)
    expected_frames = np.empty((spec.n_frames, h, w), dtype=np.float64)
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :]
    for k in range(spec.n_frames):
        if cell_images is None:
            psf = psf0 if (defocus[k], astig[k]) == (0.0, 0.0) else frame_psf(spec, defocus[k], astig[k],
                                                                                 astig_angle[k])[0]
            signal = render_psf((h, w), x_rigid[k], y_rigid[k], amplitude, psf, ov, row_shift_px=scan[k] + jitter[k])
        else:
            signal = sample_cell_image(cell_images["images"][k], cell_images["sampling_A"], (h, w), px_A,
                                       spec.rotation_deg, specimen["origin_A"], drift_px[k], scan[k] + jitter[k])
            signal = ndimage.gaussian_filter(signal, spec.source_size_A / FWHM_PER_SIGMA / px_A)
        fraction = spec.background_fraction + signal + ramp
        if contamination is not None:
            # Scan position of every pixel in specimen coordinates (Å from the padded area's corner).
            row_shift = scan[k] + jitter[k]
            sx = (cols - row_shift[:, 0:1] - drift_px[k, 0]) * px_A + margin_A
            sy = np.broadcast_to((rows - row_shift[:, 1:2] - drift_px[k, 1]) * px_A + margin_A, sx.shape)
            fraction = fraction + ndimage.map_coordinates(contamination, [sy / cont_sampling, sx / cont_sampling],
                                                          order=1,
                                                          mode="nearest")
        electrons = dose[k] * px_A ** 2
        expected = electrons * fraction
        expected_frames[k] = expected
        counts = rng.poisson(expected).astype(np.float64)
        if spec.read_noise_counts > 0:
            counts += rng.normal(0.0, spec.read_noise_counts, size=counts.shape)
        frames[k] = counts
    labelled = specimen["labelled"]
    x_true = np.empty((spec.n_frames, int(labelled.sum())))
    y_true = np.empty_like(x_true)
    offsets = np.empty((spec.n_frames, x_true.shape[1], 2))
    for k in range(spec.n_frames):
        x_true[k], y_true[k] = distorted_positions(x_rigid[k][labelled], y_rigid[k][labelled], scan[k])
        offsets[k] = noise_free_peak_offsets(expected_frames[k], x_true[k], y_true[k])
    zs = [col for col, keep in zip(specimen["atomic_numbers"], labelled) if keep]
    labels = [_column_label(col) for col in zs]
    truth = {"x": x_true, "y": y_true,
             "element": np.array([label for label, _ in labels], dtype=str),
             "kind": np.array([kind for _, kind in labels], dtype=str),
             "weight": weight[labelled], "occupancy": specimen["occupancy"][labelled], "peak_offset_px": offsets,
             "strain": true_strain[labelled]}
    attrs = {
        "pixel_size_pm": float(spec.pixel_size_pm),
        "material": spec.material,
        "simulator": spec.simulator,
        "seed": int(spec.seed),
        "energy_keV": float(spec.energy_keV),
        "semiangle_mrad": float(spec.semiangle_mrad),
        "source_size_A": float(spec.source_size_A),
        "psf_sampling_A": float(px_A / ov),
        "intensity_unit": "counts",
        "rotation_deg": float(spec.rotation_deg),
        "strain_field": spec.strain_field,
    }
    if spec.material != AMORPHOUS:
        # the unstrained lattice (rows a, b) in pixels: the reference of the strain maps
        attrs["lattice_px"] = rotated_lattice_px(project_columns(build_atoms(spec.material)).cell_A,
                                                 spec.rotation_deg, spec.pixel_size_pm)
    out = {"frames": frames, "dose_e_per_A2": dose, "defocus_nm": defocus, "astigmatism_nm": astig,
           "astigmatism_angle_deg": astig_angle, "drift_px": drift_px, "scan_shift_px": scan,
           "scan_jitter_px": jitter, "truth": truth,
           "attrs": attrs}
    if return_clean:
        out["clean"] = expected_frames
    return out


def noise_free_peak_offsets(clean: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, radius_px: float = 1.5
                            ) -> np.ndarray:
    """Offsets between truth positions and the peaks of a noise-free image.

    For each position, the brightest pixel within ``radius_px`` of it is taken
    as the peak if it is a local maximum (3 x 3), and refined to sub-pixel by a
    parabola through the logarithm of the 3 values along x and along y (exact
    for a Gaussian peak).  Positions closer than ``radius_px + 1`` to the border,
    or without a local maximum nearby, get NaN.

    Parameters
    ----------
    clean : ndarray, shape (H, W)
        Noise-free image (``simulate_series(..., return_clean=True)["clean"][k]``).
    x_px, y_px : ndarray, shape (m,)
        Truth positions of that frame, pixels.
    radius_px : float
        Search radius, pixels.

    Returns
    -------
    ndarray, shape (m, 2)
        (peak - truth) along x and y, pixels; NaN where no peak was found.
    """
    img = np.log(np.maximum(np.asarray(clean, dtype=np.float64), 1e-300))
    h, w = img.shape
    r = int(np.ceil(radius_px))
    is_max = img == ndimage.maximum_filter(img, size=3, mode="nearest")
    out = []
    for x, y in zip(np.asarray(x_px, float), np.asarray(y_px, float)):
        ix, iy = int(round(x)), int(round(y))
        if not (r + 1 <= ix < w - r - 1 and r + 1 <= iy < h - r - 1):
            out.append((np.nan, np.nan))
            continue
        win = img[iy - r:iy + r + 1, ix - r:ix + r + 1]
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        win = np.where(np.hypot(xx + ix - x, yy + iy - y) <= radius_px, win, -np.inf)
        j = np.unravel_index(np.argmax(win), win.shape)
        py, px = iy - r + j[0], ix - r + j[1]
        if not is_max[py, px]:
            out.append((np.nan, np.nan))
            continue
        peak = []
        for fm, f0, fp in ((img[py, px - 1], img[py, px], img[py, px + 1]),
                           (img[py - 1, px], img[py, px], img[py + 1, px])):
            denom = fm - 2 * f0 + fp
            peak.append(0.5 * (fm - fp) / denom if denom < 0 else 0.0)
        out.append((px + peak[0] - x, py + peak[1] - y))
    return np.array(out).reshape(-1, 2)


def depth_of_field_nm(energy_keV: float, semiangle_mrad: float) -> float:
    """Full depth of field of a STEM probe, ``1.77 lambda / alpha**2``, in nm.

    Columns in an image taken within half this distance of focus are imaged by
    the probe's central maximum; further out the probe's side lobes carry
    comparable intensity and the image peaks move off the columns.
    """
    from atomloc.library import electron_wavelength_A

    return float(1.77 * electron_wavelength_A(energy_keV) / (semiangle_mrad * 1e-3) ** 2 / 10)


def frames_in_focus(series: dict) -> tuple[np.ndarray | None, float | None]:
    """Which frames of a series were taken within half the probe's depth of field of focus.

    Returns
    -------
    in_focus : ndarray of bool, shape (n_frames,), or None
        ``|defocus_nm| <= half_dof_nm``; None when the series does not store
        ``defocus_nm`` and the attributes ``energy_keV`` and ``semiangle_mrad``
        (real series).
    half_dof_nm : float or None
        Half of :func:`depth_of_field_nm`.
    """
    attrs = series.get("attrs", {})
    if "defocus_nm" not in series or not {"energy_keV", "semiangle_mrad"} <= set(attrs):
        return None, None
    half = 0.5 * depth_of_field_nm(attrs["energy_keV"], attrs["semiangle_mrad"])
    return np.abs(np.asarray(series["defocus_nm"], dtype=float)) <= half, half


def peak_offset_medians(series: dict) -> dict:
    """Median ``|peak_offset_px|`` of a simulated series: all frames, and frames within the depth of field.

    Parameters
    ----------
    series : dict
        :func:`simulate_series` output (or :func:`atomloc.io.read_series`):
        needs ``truth["peak_offset_px"]``, ``defocus_nm`` and the attributes
        ``energy_keV`` and ``semiangle_mrad``.

    Returns
    -------
    dict
        ``all_px`` and ``in_focus_px`` (NaN when no frame is in focus), the
        number of frames ``n_frames`` and ``n_in_focus``, the number of
        (column, frame) offsets measured ``n_offsets``, and ``half_dof_nm``:
        frames with ``|defocus| <= half_dof_nm`` count as in focus.
    """
    dist = np.hypot(*np.moveaxis(np.asarray(series["truth"]["peak_offset_px"], dtype=float), -1, 0))
    focus, half = frames_in_focus(series)
    if focus is None:
        raise AtomlocInputError("peak_offset_medians: the series stores no defocus_nm / energy_keV / semiangle_mrad")

    def median(values):
        values = values[np.isfinite(values)]
        return float(np.median(values)) if len(values) else float("nan")

    return {"all_px": median(dist.ravel()), "in_focus_px": median(dist[focus].ravel()), "n_frames": len(dist),
            "n_in_focus": int(focus.sum()), "n_offsets": int(np.isfinite(dist).sum()), "half_dof_nm": half}


def _orthogonal_cell(material: str):
    """The material's cell made rectangular (abTEM), with 2 Å of vacuum around a 2-D layer."""
    import abtem

    atoms = build_atoms(material)
    if np.isclose(atoms.cell[2, 2], 0.0):
        atoms.cell[2, 2] = 0.0
        atoms.center(vacuum=2.0, axis=2)
    return abtem.orthogonalize_cell(atoms)


def abtem_cell_images(material: str, simulator: str, energy_keV: float, semiangle_mrad: float,
                      defocus_A, detector_mrad=(45.0, 180.0), supercell_A: float = 12.0,
                      wave_sampling_A: float = 0.035, slice_thickness_A: float = 2.0) -> dict:
    """abTEM HAADF images of one periodic (rectangular) cell of a perfect crystal.

    The validation path of the simulator: the image of a perfect crystal is
    periodic, so one cell scanned at the Nyquist sampling of the probe
    (lambda / (4 alpha)) and Fourier-interpolated is the whole image.  The
    potential (Lobato, infinite projection, no frozen phonons) is built on a
    supercell of at least ``supercell_A`` so the probe does not overlap itself.

    Parameters
    ----------
    material : str
        One of :data:`atomloc.structures.MATERIALS`.
    simulator : str
        ``prism`` (abTEM ``SMatrix``, built once and reused for every defocus)
        or ``multislice`` (abTEM ``Probe.scan`` per defocus).
    energy_keV, semiangle_mrad : float
        Beam energy (keV) and convergence semi-angle (mrad).
    defocus_A : sequence of float
        One image per defocus, Å (abTEM's sign).
    detector_mrad : (float, float)
        Inner and outer HAADF detector angles, mrad.
    supercell_A, wave_sampling_A, slice_thickness_A : float
        Supercell size, wave-function sampling (fine enough for the outer
        angle) and slice thickness, Å.

    Returns
    -------
    dict
        ``images`` [n, ny, nx]: collected fraction of the incident beam,
        row = y, sample (0, 0) at the cell origin; ``sampling_A`` (y, x);
        ``cell_A`` (Lx, Ly).
    """
    import abtem

    atoms = _orthogonal_cell(material)
    cell = np.diag(atoms.cell)[:2]
    reps = np.ceil(supercell_A / cell).astype(int)
    supercell = atoms * (int(reps[0]), int(reps[1]), 1)
    wavelength = 12.2643 / np.sqrt(energy_keV * 1e3 * (1 + 0.97845e-6 * energy_keV * 1e3))
    nyquist = wavelength / (4 * semiangle_mrad * 1e-3)
    gpts = np.ceil(cell / (0.9 * nyquist)).astype(int)
    images = []
    with abtem.config.set({"fft": "numpy", "dask.scheduler": "threads"}):
        potential = abtem.Potential(supercell, sampling=wave_sampling_A, slice_thickness=slice_thickness_A,
                                    projection="infinite")
        detector = abtem.AnnularDetector(inner=detector_mrad[0], outer=detector_mrad[1])
        scan = abtem.GridScan(start=(0.0, 0.0), end=tuple(cell), gpts=tuple(int(g) for g in gpts))
        # abTEM 1.0.11's SMatrixArray.scan fails (reduce() gets 'rechunk'), so the S-matrix is not
        # built once and reused: SMatrix.scan rebuilds it for every defocus.
        smatrix = abtem.SMatrix(potential=potential, energy=energy_keV * 1e3, semiangle_cutoff=semiangle_mrad)
        for df in np.atleast_1d(defocus_A):
            if simulator == "prism":
                m = smatrix.scan(scan=scan, detectors=detector, ctf=abtem.CTF(defocus=float(df)), lazy=False)
            elif simulator == "multislice":
                probe = abtem.Probe(energy=energy_keV * 1e3, semiangle_cutoff=semiangle_mrad, defocus=float(df))
                m = probe.scan(potential, scan=scan, detectors=detector, lazy=False)
            else:
                raise ValueError(f"simulator must be prism or multislice, not {simulator!r}")
            if getattr(m, "is_lazy", False):
                m = m.compute()
            images.append(np.asarray(m.array, dtype=np.float64).T)  # abTEM (x, y) -> (row = y, x)
    return {"images": np.array(images), "sampling_A": cell[::-1] / gpts[::-1], "cell_A": cell}


def fourier_upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited (periodic) interpolation of a periodic image onto a ``factor`` times finer grid."""
    from scipy.signal import resample

    out = resample(image, image.shape[0] * factor, axis=0)
    return resample(out, image.shape[1] * factor, axis=1)


def sample_cell_image(cell_image: np.ndarray, sampling_A, shape_px, pixel_size_A: float, rotation_deg: float,
                      origin_A, drift_px, row_shift_px) -> np.ndarray:
    """Sample a periodic cell image at every pixel's scan position of a frame.

    The scan position of pixel (i, j) is ((j - dx_i), (i - dy_i)) pixels minus
    the frame's drift; it is taken into the lattice frame (rotation about the
    origin by ``-rotation_deg``, then the lattice origin ``origin_A``) and
    wrapped into the cell, as the linear path places its columns with
    :func:`atomloc.structures.tile_columns`.

    Returns
    -------
    ndarray, shape (H, W)
    """
    h, w = shape_px
    fine = fourier_upsample(cell_image, 4)
    step = np.asarray(sampling_A, dtype=np.float64) / 4  # (y, x)
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :]
    shift = np.asarray(row_shift_px, dtype=np.float64)
    ox, oy = np.asarray(origin_A, dtype=np.float64)
    px = (cols - shift[:, 0:1] - drift_px[0]) * pixel_size_A - ox
    py = np.broadcast_to((rows - shift[:, 1:2] - drift_px[1]) * pixel_size_A - oy, px.shape)
    theta = np.deg2rad(rotation_deg)  # into the lattice frame: q = R(-theta) (p - origin)
    qx = np.cos(theta) * px + np.sin(theta) * py
    qy = -np.sin(theta) * px + np.cos(theta) * py
    return ndimage.map_coordinates(fine, [qy / step[0], qx / step[1]], order=3, mode="grid-wrap")
