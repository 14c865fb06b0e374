"""A HAADF frame and per-element EDX maps of one field, with chemical truth.

The specimen is the series' (:func:`atomloc.simulate.specimen.specimen_columns`:
the material's projected columns over the field), pristine, then changed atom by
atom: each atom of ``dopant_host`` becomes dopant element ``e`` with probability
``dopants[e]``; each atom of ``vacancy_element`` is missing with probability
``vacancy_rate`` (a column that loses every atom is gone).

- **HAADF**: the linear imaging model of :mod:`atomloc.simulate.series` (each
  column a point of weight sum Z**z_exponent, imaged through abTEM's probe
  blurred by the source size and the thermal smearing, binned to the pixel),
  Poisson counts at ``haadf_dose_e_per_A2`` through the collection fraction,
  plus the background fraction, in focus, without drift or scan distortion.
- **EDX**: for every element, the number of its atoms in each column, imaged
  through the same probe further blurred by the EDX delocalisation (a Gaussian
  of FWHM ``edx_delocalisation_A``).  Every atom gives the same expected count
  (equal cross-sections, scaled by ``edx_cross_section``): the scale is set so
  that one atom per site of the first cation of the pristine cell averages
  ``edx_counts_per_pixel`` counts per pixel over the field (an MoS2 Mo map
  averages that many counts, its S map twice as many: two S atoms per column).
  A flat background of ``edx_background_counts_per_pixel`` is added, and the
  counts are Poisson.

Coordinates: pixels, x = column index, the centre of pixel (0, 0) at (0.0, 0.0);
pixel (i, j) samples the specimen at (x, y) = (j, i) x pixel size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import ndimage

from atomloc.core.optics import FWHM_PER_SIGMA
from atomloc.core.settings import FromMapping
from atomloc.simulate.probe import frame_psf
from atomloc.simulate.render import render_psf
from atomloc.simulate.spec import SeriesSpec
from atomloc.simulate.specimen import specimen_columns
from atomloc.simulate.structures import MATERIALS, build_atoms, column_label, project_columns

__all__ = ["MultimodalSpec", "simulate_multimodal", "multimodal_elements"]


@dataclass(frozen=True)
class MultimodalSpec(FromMapping):
    """Settings of one simulated multi-modal field (HAADF + EDX maps).

    Defaults equal those of the config schema (``chemistry.simulation``).

    Attributes
    ----------
    material : str
        A periodic structure of :data:`atomloc.simulate.structures.MATERIALS`.
    shape_px : tuple of int
        Field shape (H, W), pixels.
    pixel_size_pm : float
        Pixel size, pm.
    rotation_deg : float
        In-plane rotation of the lattice, degrees counter-clockwise.
    energy_keV, semiangle_mrad, source_size_A, column_sigma_A, z_exponent, collection_fraction,
    background_fraction, read_noise_counts
        The HAADF model's settings, as in :class:`atomloc.simulate.spec.SeriesSpec`.
    haadf_dose_e_per_A2 : float
        Dose of the HAADF frame, e/Å².
    dopant_host : str
        Element whose atoms the dopants replace ("" = the first cation of the cell).
    dopants : dict of str to float
        Dopant element -> probability that an atom of ``dopant_host`` is that element.
    vacancy_element : str
        Element whose atoms may be missing ("" = none).
    vacancy_rate : float
        Probability that an atom of ``vacancy_element`` is missing.
    edx_counts_per_pixel : float
        Mean expected EDX counts per pixel over the field of one atom per site of
        the pristine cell's first cation (see the module text), counts.
    edx_delocalisation_A : float
        FWHM of the Gaussian delocalisation of the EDX signal, Å.
    edx_background_counts_per_pixel : float
        Expected flat background of every EDX map, counts per pixel.
    edx_cross_section : dict of str to float
        Relative EDX counts per atom of an element (default 1 for every element).
    seed : int
        Seed of every random draw of the field.
    """

    config_name: ClassVar[str] = "chemistry.simulation"

    material: str = "MoS2"
    shape_px: tuple = (128, 128)
    pixel_size_pm: float = 20.0
    rotation_deg: float = 0.0
    energy_keV: float = 300.0
    semiangle_mrad: float = 25.0
    source_size_A: float = 0.5
    column_sigma_A: float = 0.1
    z_exponent: float = 1.5
    collection_fraction: float = 0.05
    background_fraction: float = 0.005
    read_noise_counts: float = 0.5
    haadf_dose_e_per_A2: float = 1.0e4
    dopant_host: str = ""
    dopants: dict = field(default_factory=dict)
    vacancy_element: str = ""
    vacancy_rate: float = 0.0
    edx_counts_per_pixel: float = 0.2
    edx_delocalisation_A: float = 0.5
    edx_background_counts_per_pixel: float = 0.01
    edx_cross_section: dict = field(default_factory=dict)
    seed: int = 0

    def check(self, name: str = "chemistry.simulation") -> None:
        """Raise :class:`AtomlocInputError` naming the key of any value out of range."""
        from ase.data import atomic_numbers

        bad = functools.partial(self._out_of_range, name)
        if self.material not in MATERIALS:
            bad("material", f"must be one of {', '.join(MATERIALS)}")
        if len(self.shape_px) != 2 or min(self.shape_px) < 16:
            bad("shape_px", "must be two integers >= 16")
        for key in ("pixel_size_pm", "energy_keV", "semiangle_mrad", "haadf_dose_e_per_A2", "edx_counts_per_pixel",
                    "collection_fraction"):
            if not np.isfinite(getattr(self, key)) or not getattr(self, key) > 0:
                bad(key, "must be a finite number > 0")
        for key in ("source_size_A", "column_sigma_A", "background_fraction", "read_noise_counts",
                    "edx_delocalisation_A", "edx_background_counts_per_pixel"):
            if not np.isfinite(getattr(self, key)) or getattr(self, key) < 0:
                bad(key, "must be a finite number >= 0")
        if not 0 <= self.vacancy_rate <= 1:
            bad("vacancy_rate", "must be in [0, 1]")
        pristine = _pristine_elements(self.material)
        if self.dopant_host and self.dopant_host not in pristine:
            bad("dopant_host", f"must be an element of {self.material} ({', '.join(pristine)}) or empty")
        if self.vacancy_element and self.vacancy_element not in pristine:
            bad("vacancy_element", f"must be an element of {self.material} ({', '.join(pristine)}) or empty")
        if self.vacancy_rate > 0 and not self.vacancy_element:
            bad("vacancy_rate", "needs vacancy_element")
        if not isinstance(self.dopants, dict) or not all(
                e in atomic_numbers and isinstance(r, (int, float)) and 0 <= r <= 1 for e, r in self.dopants.items()):
            bad("dopants", "must map chemical symbols to probabilities in [0, 1]")
        if sum(self.dopants.values()) > 1:
            bad("dopants", "the probabilities must add up to <= 1")
        if not isinstance(self.edx_cross_section, dict) or not all(
                e in atomic_numbers and isinstance(r, (int, float)) and r > 0
                for e, r in self.edx_cross_section.items()):
            bad("edx_cross_section", "must map chemical symbols to numbers > 0")

    def series_spec(self) -> SeriesSpec:
        """The :class:`SeriesSpec` of the HAADF model (one frame, in focus, no drift or scan distortion)."""
        return SeriesSpec(material=self.material, shape_px=tuple(self.shape_px), pixel_size_pm=self.pixel_size_pm,
                          n_frames=1, rotation_deg=self.rotation_deg, energy_keV=self.energy_keV,
                          semiangle_mrad=self.semiangle_mrad, defocus_nm=(0.0, 0.0), astigmatism_nm=0.0,
                          source_size_A=self.source_size_A, column_sigma_A=self.column_sigma_A,
                          z_exponent=self.z_exponent, collection_fraction=self.collection_fraction,
                          background_fraction=self.background_fraction, read_noise_counts=self.read_noise_counts,
                          drift_px_per_frame=0.0, scan_creep_px=0.0, scan_wobble_px=0.0, scan_jitter_px=0.0,
                          seed=self.seed)


@functools.lru_cache(maxsize=None)
def _pristine_cell(material: str):
    return project_columns(build_atoms(material))


def _pristine_elements(material: str) -> tuple[str, ...]:
    """The elements of a material, heaviest first."""
    from ase.data import chemical_symbols

    zs = sorted({z for col in _pristine_cell(material).atomic_numbers for z in col}, reverse=True)
    return tuple(chemical_symbols[z] for z in zs)


def multimodal_elements(spec: MultimodalSpec) -> tuple[str, ...]:
    """The elements that get an EDX map: the material's (heaviest first), then the dopants (heaviest first)."""
    from ase.data import atomic_numbers

    pristine = _pristine_elements(spec.material)
    extra = sorted((e for e in spec.dopants if e not in pristine), key=lambda e: -atomic_numbers[e])
    return pristine + tuple(extra)


def _first_cation(material: str) -> str:
    from atomloc.simulate.structures import METALS

    elements = _pristine_elements(material)
    metals = [e for e in elements if e in METALS]
    return metals[0] if metals else elements[0]


def _change_atoms(columns: list[tuple[str, ...]], spec: MultimodalSpec, rng: np.random.Generator):
    """Dopants and vacancies, atom by atom; drops columns that lose every atom."""
    host = spec.dopant_host or _first_cation(spec.material)
    names = list(spec.dopants)
    cumulative = np.cumsum([spec.dopants[e] for e in names])
    out, keep = [], []
    for col in columns:
        new = []
        for s in col:
            if s == spec.vacancy_element and rng.uniform() < spec.vacancy_rate:
                continue
            if s == host and names:
                u = rng.uniform()
                k = int(np.searchsorted(cumulative, u, side="right"))
                if k < len(names):
                    s = names[k]
            new.append(s)
        keep.append(bool(new))
        if new:
            out.append(tuple(new))
    return out, np.array(keep, dtype=bool)


def simulate_multimodal(spec: MultimodalSpec) -> dict:
    """Render one field's HAADF frame and EDX maps, with the truth.

    Parameters
    ----------
    spec : MultimodalSpec

    Returns
    -------
    dict
        ``haadf`` float32 (H, W), counts; ``elements`` tuple of str;
        ``edx`` float32 (n_elements, H, W), counts (in the order of
        ``elements``); ``edx_truth`` float64 (n_elements, H, W), the expected
        counts of each element without the background (the maps fusion
        recovers); ``haadf_clean`` float64 (H, W), expected HAADF counts;
        ``columns``: a dict of per-column arrays ``x``, ``y`` (pixels, x =
        column index), ``element`` (composition, e.g. ``Mo``, ``S2``, ``S``,
        ``Re``), ``kind`` (``metal`` / ``chalcogen``), ``pristine`` (the
        composition of the site in the pristine crystal) and ``n_<element>``
        (atoms of each element); ``attrs``: the calibration and provenance
        (pixel size, material, seed, ...).
    """
    from ase.data import atomic_numbers, chemical_symbols

    spec.check()
    rng = np.random.default_rng(spec.seed)
    series_spec = spec.series_spec()
    h, w = spec.shape_px
    px_A = spec.pixel_size_pm / 100.0
    psf, ov = frame_psf(series_spec)
    reach_A = (psf.shape[0] / 2 / ov + 2) * px_A
    fov_A = (w * px_A, h * px_A)
    specimen = specimen_columns(series_spec, -reach_A, fov_A[0] + reach_A, -reach_A, fov_A[1] + reach_A, fov_A, rng)
    pristine = [tuple(chemical_symbols[z] for z in col) for col in specimen["atomic_numbers"]]
    columns, kept = _change_atoms(pristine, spec, rng)
    pristine = [col for col, k in zip(pristine, kept) if k]
    xy_px = specimen["xy_A"][kept] / px_A
    x_px, y_px = xy_px[:, 0], xy_px[:, 1]
    elements = multimodal_elements(spec)

    # HAADF: the heaviest pristine column peaks at the collection fraction.
    weight = np.array([sum(atomic_numbers[s] ** spec.z_exponent for s in col) for col in columns])
    amplitude = spec.collection_fraction * weight / specimen["reference_weight"] / psf.max()
    signal = render_psf((h, w), x_px, y_px, amplitude, psf, ov)
    haadf_clean = spec.haadf_dose_e_per_A2 * px_A ** 2 * (spec.background_fraction + signal)
    haadf = rng.poisson(haadf_clean).astype(np.float64)
    if spec.read_noise_counts > 0:
        haadf += rng.normal(0.0, spec.read_noise_counts, size=haadf.shape)

    # EDX: per atom the same expected counts (x cross-section); the scale from the pristine cell.
    edx_psf = ndimage.gaussian_filter(psf, spec.edx_delocalisation_A / FWHM_PER_SIGMA / (px_A / ov), mode="constant")
    edx_psf = edx_psf / edx_psf.sum()
    cell = _pristine_cell(spec.material)
    cation = _first_cation(spec.material)
    sites_per_cell = sum(col.count(atomic_numbers[cation]) for col in cell.atomic_numbers)
    cell_area_px = abs(np.linalg.det(cell.cell_A)) / px_A ** 2
    # One atom's image integrates to 1 / ov**2 in render_psf's units (the table sums to 1 over ov**2 samples per pixel).
    counts_per_atom = spec.edx_counts_per_pixel * cell_area_px / sites_per_cell
    edx_truth = np.empty((len(elements), h, w))
    for k, element in enumerate(elements):
        n_atoms = np.array([col.count(element) for col in columns], dtype=float)
        sigma = float(spec.edx_cross_section.get(element, 1.0))
        has = n_atoms > 0
        edx_truth[k] = sigma * counts_per_atom * ov ** 2 * render_psf((h, w), x_px[has], y_px[has], n_atoms[has],
                                                                       edx_psf, ov) if has.any() else 0.0
    edx = rng.poisson(edx_truth + spec.edx_background_counts_per_pixel).astype(np.float32)

    inside = (x_px > -0.5) & (x_px < w - 0.5) & (y_px > -0.5) & (y_px < h - 0.5)
    labels = [column_label(col) for col in columns]
    table = {"x": x_px[inside], "y": y_px[inside],
             "element": np.array([lab for lab, _ in labels], dtype=str)[inside],
             "kind": np.array([kind for _, kind in labels], dtype=str)[inside],
             "pristine": np.array([column_label(col)[0] for col in pristine], dtype=str)[inside]}
    for element in elements:
        table[f"n_{element}"] = np.array([col.count(element) for col in columns], dtype=np.int64)[inside]
    attrs = {"material": spec.material, "pixel_size_pm": float(spec.pixel_size_pm), "seed": int(spec.seed),
             "haadf_dose_e_per_A2": float(spec.haadf_dose_e_per_A2),
             "edx_counts_per_pixel": float(spec.edx_counts_per_pixel),
             "edx_delocalisation_A": float(spec.edx_delocalisation_A),
             "edx_background_counts_per_pixel": float(spec.edx_background_counts_per_pixel),
             "z_exponent": float(spec.z_exponent), "intensity_unit": "counts"}
    return {"haadf": haadf.astype(np.float32), "haadf_clean": haadf_clean, "elements": elements,
            "edx": edx, "edx_truth": edx_truth, "columns": table, "attrs": attrs}
