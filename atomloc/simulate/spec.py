"""Settings of one simulated series (:class:`SeriesSpec`), checked when built from a config mapping.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

from atomloc.core.settings import FromMapping
from atomloc.simulate.strain_fields import STRAIN_FIELDS
from atomloc.simulate.structures import AMORPHOUS, MATERIALS

SERIES_MATERIALS = (*MATERIALS, AMORPHOUS)


SIMULATORS = ("linear", "prism", "multislice")


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
    frame_dose_e_per_A2, frame_defocus_nm : tuple of float
        Controlled conditions: one dose (e/Å²) / defocus (nm) per frame,
        replacing the random draws above (empty = drawn).  The draws are made
        all the same, so every other random condition of the series is
        unchanged by setting them (the controlled sweeps of
        :mod:`atomloc.simulate.sweep`).
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
        Strain applied to the specimen (:func:`atomloc.simulate.strain_fields.applied_strain`):
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
    frame_dose_e_per_A2: tuple = ()
    frame_defocus_nm: tuple = ()
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
        for key in ("frame_dose_e_per_A2", "frame_defocus_nm"):
            if len(getattr(self, key)) not in (0, self.n_frames):
                bad(key, f"must be empty or one value per frame (n_frames = {self.n_frames})")
        if not all(d > 0 for d in self.frame_dose_e_per_A2):
            bad("frame_dose_e_per_A2", "must be > 0")
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
