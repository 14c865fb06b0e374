"""TEMImageNet-style training library rendered with the linear imaging model.

Each library image shows one structure (a crystal along a zone axis, a 2-D
material, a faceted fcc nanoparticle, or single heavy atoms and small clusters
on amorphous carbon) at a random rotation, a random pixel size chosen so that
the nearest-neighbour column spacing spans ``spacing_px_range`` pixels, a random
probe (Gaussian approximation of the aberration-free probe broadened by
defocus and source size), background (constant, linear ramp or low-frequency),
dose (Poisson) and scan-line jitter.  With each image come its labels:

* ``positions``: the labelled column positions (x, y) in pixels (x = column
  index, centre of pixel (0, 0) at (0, 0));
* ``spacing_px``: mean distance from each labelled column to its nearest
  labelled neighbour, pixels;
* ``confidence``: the AtomID-net target, an unnormalised Gaussian
  ``exp(-r^2 / (2 sigma^2))`` around each column with
  ``sigma = confidence_sigma_frac * spacing_px`` (peak 1 whatever the spacing;
  overlapping tails combine by maximum);
* ``gaussian_mask``: TEMImageNet's gaussianMask, a Gaussian of FWHM
  ``gaussian_mask_fwhm_A`` around each column (peak 1);
* ``circular_mask``: TEMImageNet's circularMask, discs of radius
  ``r = sqrt((0.5 lambda / alpha)^2 + (d_source / 2)^2)`` (lambda the electron
  wavelength, alpha the convergence semi-angle, d_source the source size).

With ``restoration_labels`` the restoration targets of TEMImageNet come too, in
the image's own units (counts, after the detector's gain and offset and an
8-bit export's scaling where those effects act), from the same truth and the
same draws as the image (:func:`restoration_targets`):

* ``no_noise`` (noNoise): the expected image, columns + background, without
  Poisson, read, scan-line noise or saturation;
* ``no_background_no_noise`` (noBackgroundnoNoise): the columns alone;
* ``superres`` (noNoiseNoBackgroundSuperresolution): each column a Gaussian of
  FWHM ``superres_fwhm_A`` carrying the column's integrated intensity
  (``amplitude * 2 pi sigma^2`` kept), without the probe's defocus, tails or
  astigmatism, so the deblurred image preserves column intensities;
* with ``upsample_labels`` each of them also on a 2x finer grid (``*_x2``,
  2H x 2W; a fine pixel k covers original coordinate ``(k - 0.5) / 2``),
  columns rendered at that grid, the smooth background interpolated: labels
  for a 2x up-sampling model (none is trained yet; they are written with the
  library for one).

Amorphous carbon is rendered but never labelled.  Every random draw comes from
one seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from atomloc.core.geometry import nearest_neighbour_spacing
from atomloc.core.optics import FWHM_PER_SIGMA, circular_mask_radius_A, probe_sigma_A
from atomloc.core.settings import FromMapping
from atomloc.simulate.realism import (
    detector,
    draw_effects,
    elliptical_blur,
    flyback,
    quantise,
    quantise_affine,
    scan_lines,
    smooth_field,
    vacuum_mask,
)
from atomloc.simulate.render import render_columns, scan_jitter
from atomloc.simulate.structures import (
    AMORPHOUS,
    FOREIGN_MATERIALS,
    MATERIALS,
    amorphous_carbon_atoms,
    build_atoms,
    nearest_column_distance_A,
    project_columns,
    single_atoms_on_carbon,
    tile_columns,
)

NANOPARTICLE = "Au_nanoparticle"


LIBRARY_STRUCTURES = (*MATERIALS, NANOPARTICLE, AMORPHOUS)


#: The default draw: every structure except the bilayer, which the benchmark keeps as a failure case,
#: and the foreign validation set's structures.
DEFAULT_LIBRARY_STRUCTURES = tuple(s for s in LIBRARY_STRUCTURES if s != "MoS2_bilayer" and s not in FOREIGN_MATERIALS)


BACKGROUNDS = ("constant", "ramp", "lowfreq")


RESTORATION_LABELS = ("no_noise", "no_background_no_noise", "superres")
"""Restoration targets of the library (TEMImageNet's noNoise, noBackgroundnoNoise,
noNoiseNoBackgroundSuperresolution), rendered with ``restoration_labels``."""

UPSAMPLED_SUFFIX = "_x2"
"""Suffix of the 2x up-sampled restoration targets (``upsample_labels``)."""


_RANGES = ("spacing_px_range", "rotation_deg_range", "convergence_mrad_range", "defocus_nm_range",
           "source_size_A_range", "electrons_per_px_range")


@dataclass(frozen=True)
class LibrarySpec(FromMapping):
    """Parameters of the training library.

    Defaults equal the schema's ``library`` defaults (``workflow/schemas/config.schema.yaml``,
    checked by a test); the default ``config.yaml`` narrows ``structures``, leaving
    ``graphene`` and ``NiO_001`` out as held-out structures (``benchmarks/held_out.py``).

    Attributes
    ----------
    structures : tuple of str
        Structures drawn in turn, names from :data:`LIBRARY_STRUCTURES`; the default,
        :data:`DEFAULT_LIBRARY_STRUCTURES`, leaves out the bilayer failure case.
    n_images : int
        Number of images.
    shape_px : int
        Images are square, ``shape_px`` pixels on a side.
    spacing_px_range : (float, float)
        Range of the nearest-neighbour column spacing, pixels (log-uniform).
    rotation_deg_range : (float, float)
        Range of the in-plane rotation, degrees (uniform).
    energy_kV : float
        Beam energy (sets the wavelength of the circular mask).
    convergence_mrad_range : (float, float)
        Range of the probe convergence semi-angle, mrad.
    defocus_nm_range : (float, float)
        Range of the defocus, nm (uniform; the probe is broadened by
        ``|defocus| * alpha / 2`` in quadrature).
    source_size_A_range : (float, float)
        Range of the source size (FWHM of the Gaussian source), Å.
    electrons_per_px_range : (float, float)
        Range of the dose per pixel (log-uniform), electrons collected on the
        heaviest column of the image.
    jitter_A : float
        Standard deviation scale of the scan-line jitter, Å.
    z_exponent : float
        Column weight is sum Z**z_exponent.
    confidence_sigma_frac : float
        Sigma of the confidence peaks as a fraction of the image's spacing.
    gaussian_mask_fwhm_A : float
        FWHM of the gaussianMask peaks, Å.
    effects_prob : float
        Probability with which each real-data effect of :mod:`atomloc.simulate.realism`
        (thickness, contrast exponent, probe tails, astigmatism, fly-back, vacuum holes,
        carbon film, scan-line offsets and gain jumps, detector gain/offset/read noise,
        8-bit export) acts on an image, independently; 0 = the plain linear model.
    restoration_labels : bool
        Also render the restoration targets :data:`RESTORATION_LABELS`
        (:func:`restoration_targets`); they draw no random numbers, so the
        images and the other labels do not change.
    superres_fwhm_A : float
        FWHM of the columns of the ``superres`` target, Å.
    upsample_labels : bool
        With ``restoration_labels``, also the 2x up-sampled targets (``*_x2``).
    seed : int
    """

    config_name: ClassVar[str] = "library"

    structures: tuple = DEFAULT_LIBRARY_STRUCTURES
    n_images: int = 640
    shape_px: int = 128
    spacing_px_range: tuple = (4.0, 40.0)
    rotation_deg_range: tuple = (0.0, 90.0)
    energy_kV: float = 300.0
    convergence_mrad_range: tuple = (20.0, 30.0)
    defocus_nm_range: tuple = (-5.0, 5.0)
    source_size_A_range: tuple = (0.5, 1.0)
    electrons_per_px_range: tuple = (20.0, 2000.0)
    jitter_A: float = 0.1
    z_exponent: float = 1.5
    confidence_sigma_frac: float = 0.15
    gaussian_mask_fwhm_A: float = 0.5
    effects_prob: float = 0.0
    restoration_labels: bool = False
    superres_fwhm_A: float = 0.5
    upsample_labels: bool = False
    seed: int = 0

    def check(self, name: str = "library") -> None:
        """Raise :class:`AtomlocInputError` naming any key out of range."""
        bad = functools.partial(self._out_of_range, name)

        unknown = [s for s in self.structures if s not in LIBRARY_STRUCTURES]
        if unknown or not self.structures:
            bad("structures", f"must be a non-empty list from {', '.join(LIBRARY_STRUCTURES)}")
        if self.n_images < 1:
            bad("n_images", "must be >= 1")
        if self.shape_px < 32:
            bad("shape_px", "must be >= 32")
        for key in _RANGES:
            lo, hi = getattr(self, key)
            if lo > hi:
                bad(key, "must be [min, max] with min <= max")
        for key in ("spacing_px_range", "convergence_mrad_range", "electrons_per_px_range"):
            if not getattr(self, key)[0] > 0:
                bad(key, "minimum must be > 0")
        if self.source_size_A_range[0] < 0:
            bad("source_size_A_range", "must be >= 0")
        for key in ("energy_kV", "confidence_sigma_frac", "gaussian_mask_fwhm_A", "superres_fwhm_A"):
            if not getattr(self, key) > 0:
                bad(key, "must be > 0")
        if self.jitter_A < 0:
            bad("jitter_A", "must be >= 0")
        if not 0 <= self.effects_prob <= 1:
            bad("effects_prob", "must be in [0, 1]")
        if self.upsample_labels and not self.restoration_labels:
            bad("upsample_labels", "needs restoration_labels: true")


def peak_map(shape_px, xy: np.ndarray, sigma_px: float) -> np.ndarray:
    """Unnormalised Gaussians ``exp(-r^2 / (2 sigma^2))`` at ``xy`` (pixels), combined by maximum.

    The value is 1 at every column whatever ``sigma_px``; used for the
    confidence map and the gaussianMask.
    """
    h, w = shape_px
    out = np.zeros((h, w), dtype=np.float64)
    r = int(np.ceil(4 * sigma_px)) + 1
    offsets = np.arange(-r, r + 1)
    for x, y in np.asarray(xy, dtype=np.float64):
        cx, cy = int(round(x)), int(round(y))
        iy = cy + offsets
        ix = cx + offsets
        ky = (iy >= 0) & (iy < h)
        kx = (ix >= 0) & (ix < w)
        if not ky.any() or not kx.any():
            continue
        g = np.exp(-0.5 * ((iy[ky, None] - y) ** 2 + (ix[None, kx] - x) ** 2) / sigma_px ** 2)
        block = out[iy[ky][0]:iy[ky][-1] + 1, ix[kx][0]:ix[kx][-1] + 1]
        np.maximum(block, g, out=block)
    return out


def disc_map(shape_px, xy: np.ndarray, radius_px: float) -> np.ndarray:
    """Binary discs of ``radius_px`` around ``xy`` (pixels), as float (0 or 1)."""
    h, w = shape_px
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w), dtype=bool)
    if len(xy):
        d, _ = cKDTree(np.asarray(xy, dtype=np.float64)).query(np.column_stack([xx.ravel(), yy.ravel()]))
        out = (d <= radius_px).reshape(h, w)
    return out.astype(np.float64)


@functools.lru_cache(maxsize=None)
def _projected_cell(structure):
    """Projected columns of a periodic structure, built once per process."""
    return project_columns(build_atoms(structure))


def _crystal_columns(structure, size_A, rotation_deg, rng):
    """Columns of a periodic structure over a square of ``size_A`` Å (with a margin), rotated."""
    cell = _projected_cell(structure)
    margin = 4.0
    origin = rng.uniform(0, 1, size=2) @ cell.cell_A
    xy, index = tile_columns(cell, -margin, size_A + margin, -margin, size_A + margin, rotation_deg, origin)
    return xy, [cell.atomic_numbers[i] for i in index], np.ones(len(xy), dtype=bool)


def _nanoparticle_columns(size_A, rotation_deg, rng):
    """A truncated-octahedron Au particle along [001] or [110] on amorphous carbon."""
    from ase.cluster import Octahedron

    length = int(rng.integers(5, 10))
    particle = Octahedron("Au", length=length, cutoff=int(rng.integers(1, (length - 1) // 2 + 1)))
    if rng.uniform() < 0.5:
        particle.rotate((1, 1, 0), (0, 0, 1))
    particle.rotate(rotation_deg, "z")
    pos = particle.positions[:, :2] - particle.positions[:, :2].mean(axis=0) + size_A / 2
    # Atoms within 0.3 Å in projection share a column.
    groups = cKDTree(pos).query_ball_point(pos, r=0.3)
    seen = np.full(len(pos), -1)
    cols, zs = [], []
    for i, g in enumerate(groups):
        if seen[i] >= 0:
            continue
        members = [j for j in g if seen[j] < 0]
        seen[members] = len(cols)
        cols.append(pos[members].mean(axis=0))
        zs.append(tuple(79 for _ in members))
    xy = np.array(cols)
    cxy, cz, clab = amorphous_carbon_atoms(size_A, rng)
    return np.vstack([xy, cxy]), zs + cz, np.concatenate([np.ones(len(xy), bool), clab])


def _nn_spacing_A(structure) -> float:
    """Nearest-neighbour column spacing of a structure, Å (typical values for the non-periodic ones)."""
    if structure == NANOPARTICLE:
        return 2.04
    if structure == AMORPHOUS:
        return 4.0
    return nearest_column_distance_A(_projected_cell(structure))


def _background(shape, kind, rng):
    h, w = shape
    if kind == "constant":
        return np.zeros(shape)
    if kind == "ramp":
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        g = rng.normal(size=2)
        ramp = g[0] * xx + g[1] * yy
        return ramp - ramp.min()
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(h, w) / 8, mode="wrap")
    return (field - field.min()) / max(np.ptp(field), 1e-12)


def _fine_grid(xy_px: np.ndarray, sigma_px: float, jitter_px: np.ndarray, upsample: int):
    """Positions, sigma and row shifts on a grid ``upsample`` x finer (fine pixel k = original ``(k + 0.5) / s - 0.5``)."""
    s = upsample
    if s == 1:
        return xy_px, sigma_px, jitter_px
    rows = (np.arange(s * len(jitter_px)) + 0.5) / s - 0.5
    jitter = np.column_stack([np.interp(rows, np.arange(len(jitter_px)), jitter_px[:, c]) for c in range(2)])
    return xy_px * s + (s - 1) / 2, sigma_px * s, jitter * s


def column_image(n: int, xy_px: np.ndarray, weight: np.ndarray, sigma_px: float, jitter_px: np.ndarray,
                 effects: dict, upsample: int = 1) -> np.ndarray:
    """The columns of a library image through the probe, its tails and astigmatism (no background, no noise).

    Parameters
    ----------
    n : int
        Side of the image, pixels.
    xy_px : ndarray, shape (m, 2)
        Column positions, pixels (x = column index, pixel centres at integers).
    weight : ndarray, shape (m,)
        Peak value of each column in the focused probe (units of the image before the dose).
    sigma_px : float
        Probe sigma, pixels.
    jitter_px : ndarray, shape (n, 2)
        Scan-line jitter of each row, pixels (:func:`atomloc.simulate.render.scan_jitter`).
    effects : dict
        The image's effects (:func:`atomloc.simulate.realism.draw_effects`); ``probe_tail``
        and ``astigmatism`` act here.
    upsample : int
        Render on a grid this many times finer (same physical field, ``n * upsample`` pixels;
        fine pixel k centred at original coordinate ``(k + 0.5) / upsample - 0.5``).

    Returns
    -------
    ndarray of float64, shape (n * upsample, n * upsample)
    """
    m = n * upsample
    xy, sigma, jitter = _fine_grid(xy_px, sigma_px, jitter_px, upsample)
    signal = render_columns((m, m), xy[:, 0], xy[:, 1], weight, sigma, row_shift_px=jitter)
    if "probe_tail" in effects:
        tail = effects["probe_tail"]
        wide = render_columns((m, m), xy[:, 0], xy[:, 1], weight / tail["width"] ** 2,
                              tail["width"] * sigma, row_shift_px=jitter)
        signal = (1 - tail["fraction"]) * signal + tail["fraction"] * wide
    if "astigmatism" in effects:
        signal = elliptical_blur(signal, effects["astigmatism"]["extra"] * sigma,
                                 effects["astigmatism"]["angle_rad"])
    return signal


def restoration_targets(n: int, xy_px: np.ndarray, weight: np.ndarray, sigma_px: float, jitter_px: np.ndarray,
                        effects: dict, background: np.ndarray | float, gain: float, offset: float,
                        superres_sigma_px: float, upsample: int = 1, columns: np.ndarray | None = None) -> dict:
    """TEMImageNet's restoration targets of one library image, in the image's units.

    Parameters
    ----------
    n, xy_px, weight, sigma_px, jitter_px, effects
        As for :func:`column_image`.
    background : ndarray, shape (n, n), or float
        The image's background, in the units of ``weight``.
    gain, offset : float
        The image's expected value is ``gain * (columns + background) + offset``
        (dose, detector gain and offset, 8-bit scaling).
    superres_sigma_px : float
        Sigma of the ``superres`` columns, original pixels.
    upsample : int
        1, or 2 for the 2x up-sampled targets (``background`` is interpolated linearly).
    columns : ndarray, optional
        :func:`column_image` of these arguments, where the caller has it already.

    Returns
    -------
    dict of ndarray, shape (n * upsample, n * upsample)
        ``no_noise = gain * max(columns + background, 0) + offset`` (the image's
        expectation), ``no_background_no_noise = gain * columns`` and ``superres``:
        each column a Gaussian of ``superres_sigma_px`` with amplitude
        ``gain * weight * sigma_px**2 / superres_sigma_px**2`` (the integrated
        intensity of the column kept), jitter kept, tails and astigmatism removed.
    """
    if columns is None:
        columns = column_image(n, xy_px, weight, sigma_px, jitter_px, effects, upsample)
    if upsample > 1 and np.ndim(background):
        background = ndimage.zoom(np.asarray(background, dtype=np.float64), upsample, order=1, mode="nearest",
                                  grid_mode=True)
    xy, sigma_sr, jitter = _fine_grid(xy_px, superres_sigma_px, jitter_px, upsample)
    sharp = render_columns(columns.shape, xy[:, 0], xy[:, 1], weight * (sigma_px / superres_sigma_px) ** 2,
                           sigma_sr, row_shift_px=jitter)
    return {"no_noise": gain * np.clip(columns + background, 0, None) + offset,
            "no_background_no_noise": gain * columns,
            "superres": gain * sharp}


def render_library_image(spec: LibrarySpec, structure: str, rng: np.random.Generator) -> dict:
    """Render one library image of ``structure`` and its labels.

    Returns
    -------
    dict
        ``image`` float32 (H, W) in counts; ``positions`` (m, 2) labelled
        column positions in pixels; ``spacing_px``; ``confidence``,
        ``gaussian_mask``, ``circular_mask`` float32 (H, W); ``pixel_size_pm``;
        and the drawn imaging parameters.
    """
    n = spec.shape_px
    lo, hi = np.log(spec.spacing_px_range)
    spacing_target_px = float(np.exp(rng.uniform(lo, hi)))
    px_A = _nn_spacing_A(structure) / spacing_target_px
    size_A = n * px_A
    rotation = float(rng.uniform(*spec.rotation_deg_range))
    if structure == NANOPARTICLE:
        xy_A, zs, labelled = _nanoparticle_columns(size_A, rotation, rng)
    elif structure == AMORPHOUS:
        xy_A, zs, labelled = single_atoms_on_carbon(size_A, rng)
    else:
        xy_A, zs, labelled = _crystal_columns(structure, size_A, rotation, rng)
    effects = draw_effects(spec.effects_prob, rng)  # {} without a draw unless effects_prob > 0
    z_exponent = effects["contrast"]["z_exponent"] if "contrast" in effects else spec.z_exponent
    convergence = float(rng.uniform(*spec.convergence_mrad_range))
    defocus = float(rng.uniform(*spec.defocus_nm_range))
    source = float(rng.uniform(*spec.source_size_A_range))
    sigma_px = probe_sigma_A(spec.energy_kV, convergence, defocus, source) / px_A
    jitter = scan_jitter(n, spec.jitter_A / px_A, rng)
    xy_px = xy_A / px_A
    all_labelled = xy_px[labelled]
    spacing_px = nearest_neighbour_spacing(all_labelled) if len(all_labelled) >= 2 else spacing_target_px
    if "film" in effects:
        fxy, fz, flab = amorphous_carbon_atoms(size_A, rng, effects["film"]["density_per_A2"])
        xy_px, zs, labelled = np.vstack([xy_px, fxy / px_A]), list(zs) + fz, np.concatenate([labelled, flab])
    if "flyback" in effects:
        xy_px = flyback(xy_px, **effects["flyback"])
    weight = np.array([sum(z ** z_exponent for z in col) for col in zs])
    weight = weight / weight[labelled].max()
    if "thickness" in effects:
        field = smooth_field((n, n), rng, n / 4)
        at = ndimage.map_coordinates(field, [xy_px[:, 1], xy_px[:, 0]], order=1, mode="nearest")
        weight = weight * (1 + effects["thickness"]["amplitude"] * at)
    vacuum = None
    if "vacuum" in effects:
        vacuum = vacuum_mask((n, n), effects["vacuum"]["fraction"], rng)
        iy = np.clip(np.rint(xy_px[:, 1]).astype(int), 0, n - 1)
        ix = np.clip(np.rint(xy_px[:, 0]).astype(int), 0, n - 1)
        in_vacuum = vacuum[iy, ix]
        weight, labelled = np.where(in_vacuum, 0.0, weight), labelled & ~in_vacuum
    signal = column_image(n, xy_px, weight, sigma_px, jitter, effects)
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    background = float(rng.uniform(0.0, 0.3)) + float(rng.uniform(0.0, 0.3)) * _background((n, n), kind, rng)
    if vacuum is not None:
        background = background * (1 - ndimage.gaussian_filter(vacuum.astype(np.float64), 1.0))
    lo, hi = np.log(spec.electrons_per_px_range)
    electrons = float(np.exp(rng.uniform(lo, hi)))
    image = rng.poisson(electrons * np.clip(signal + background, 0, None)).astype(np.float64)
    gain, offset = electrons, 0.0  # the image's units: gain * (signal + background) + offset, before noise
    if "scanlines" in effects:
        image = scan_lines(image, electrons, rng=rng, **effects["scanlines"])
    if "detector" in effects:
        image = detector(image, rng=rng, **effects["detector"])
        gain, offset = gain * effects["detector"]["gain"], effects["detector"]["offset"]
    else:
        image += rng.normal(0.0, 0.5, size=image.shape)
    if "quantise" in effects:
        a, b = quantise_affine(image, **effects["quantise"])
        image = quantise(image, **effects["quantise"])
        gain, offset = gain * a, offset * a + b

    inside = labelled & (xy_px[:, 0] > -0.5) & (xy_px[:, 0] < n - 0.5) & (xy_px[:, 1] > -0.5) & (xy_px[:, 1] < n - 0.5)
    positions = xy_px[inside]
    all_labelled = xy_px[labelled]
    radius_px = circular_mask_radius_A(spec.energy_kV, convergence, source) / px_A
    restoration = {}
    if spec.restoration_labels:
        superres_sigma_px = spec.superres_fwhm_A / px_A / FWHM_PER_SIGMA
        for s in (1, 2) if spec.upsample_labels else (1,):
            targets = restoration_targets(n, xy_px, weight, sigma_px, jitter, effects, background, gain, offset,
                                          superres_sigma_px, upsample=s, columns=signal if s == 1 else None)
            restoration.update({k + (UPSAMPLED_SUFFIX if s == 2 else ""): v.astype(np.float32)
                                for k, v in targets.items()})
    return {
        **restoration,
        "image": image.astype(np.float32),
        "positions": positions,
        "spacing_px": spacing_px,
        "confidence": peak_map((n, n), all_labelled, spec.confidence_sigma_frac * spacing_px).astype(np.float32),
        "gaussian_mask": peak_map((n, n), all_labelled,
                                  spec.gaussian_mask_fwhm_A / px_A / FWHM_PER_SIGMA).astype(np.float32),
        "circular_mask": disc_map((n, n), all_labelled, radius_px).astype(np.float32),
        "pixel_size_pm": 100 * px_A,
        "structure": structure,
        "rotation_deg": rotation,
        "defocus_nm": defocus,
        "electrons_per_px": electrons,
        "background": kind,
        "effects": ",".join(effects),
    }


def restoration_maps() -> tuple[str, ...]:
    """Names of every restoration target a library may hold (1x and 2x)."""
    return RESTORATION_LABELS + tuple(k + UPSAMPLED_SUFFIX for k in RESTORATION_LABELS)


def synthesize_library(spec: LibrarySpec, progress: bool = False) -> dict:
    """Render the whole library.

    Image ``k`` uses structure ``spec.structures[k % len(spec.structures)]`` (so
    every structure is equally represented) and its own random stream
    ``default_rng([spec.seed, k])``, so the library is reproducible and any
    image can be regenerated alone.

    Returns
    -------
    dict
        ``images``, ``confidence``, ``gaussian_mask``, ``circular_mask``
        float32 [n, H, W] (with ``restoration_labels`` also :data:`RESTORATION_LABELS`,
        and with ``upsample_labels`` their ``*_x2`` [n, 2H, 2W]); ``spacing_px``, ``pixel_size_pm``, ``electrons_per_px``,
        ``defocus_nm``, ``rotation_deg`` [n]; ``structure`` [n] str;
        ``positions``: list of (m_k, 2) arrays.
    """
    from tqdm import tqdm

    spec.check()
    items = []
    for k in tqdm(range(spec.n_images), desc="library", disable=not progress):
        structure = spec.structures[k % len(spec.structures)]
        items.append(render_library_image(spec, structure, np.random.default_rng([spec.seed, k])))
    maps = ("image", "confidence", "gaussian_mask", "circular_mask", *(k for k in items[0] if k in restoration_maps()))
    out = {key: np.stack([it[key] for it in items]) for key in maps}
    out["images"] = out.pop("image")
    for key in ("spacing_px", "pixel_size_pm", "electrons_per_px", "defocus_nm", "rotation_deg"):
        out[key] = np.array([it[key] for it in items], dtype=np.float64)
    out["structure"] = np.array([it["structure"] for it in items])
    out["positions"] = [it["positions"] for it in items]
    return out
