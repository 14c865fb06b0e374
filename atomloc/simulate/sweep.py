"""Controlled sweeps: a grid of imaging conditions expanded into simulated series.

One sweep is one material imaged on a grid of dose x defocus at its nominal
pixel size, and dose x pixel size in focus, with ``seeds`` independent frames
per grid point (own noise, scan distortion and drift; the same specimen).
Each pixel size is one series whose frames are the grid points in a fixed
order, so that the workflow runs each method once per pixel size, not once
per point.  Every other condition is that of a :class:`SeriesSpec`, fixed for
the sweep (astigmatism off by default, so that defocus is the only aberration
varied).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

from atomloc.core.errors import AtomlocInputError
from atomloc.core.settings import FromMapping
from atomloc.simulate.spec import SeriesSpec
from atomloc.simulate.structures import AMORPHOUS

SWEEP_SPLIT = "sweep"
"""The split of the datasets a sweep expands to."""


@dataclass(frozen=True)
class SweepSpec(FromMapping):
    """One controlled sweep (one material).

    Attributes
    ----------
    name : str
        Sweep name; its datasets are ``sweep_<name>_<pixel size>pm``.
    material : str
        Structure (:data:`atomloc.simulate.spec.SERIES_MATERIALS`, a crystal).
    dose_e_per_A2 : tuple of float
        Doses of the grid, e/Å², ascending (at least 2).
    defocus_nm : tuple of float
        Defoci of the dose x defocus grid, nm; must contain 0 (the in-focus dose sweep).
    pixel_size_pm : tuple of float
        Pixel sizes, pm; the first is the nominal one (the dose x defocus grid),
        the others are imaged in focus at every dose (the dose x spacing grid).
    map_dose_e_per_A2 : tuple of float
        The doses at which the off-focus defoci and the other pixel sizes are
        imaged (a subset of ``dose_e_per_A2``; empty = all): the decision maps'
        columns.  The in-focus dose sweep at the nominal pixel size always has
        every dose.
    reference_dose_e_per_A2 : float
        A map dose at which the defocus and spacing curves are read.
    seeds : int
        Independent frames per grid point.
    truth_kinds : tuple of str
        Column kinds scored (others are neither hits nor false alarms; e.g.
        ReS2's nearly invisible S columns: ``[metal]``); empty = the
        workflow's ``evaluate.truth_kinds``.
    simulation : dict
        Any other :class:`SeriesSpec` keys (``shape_px``, ``rotation_deg``,
        ``seed``, ...); ``n_frames``, ``dose_e_per_A2``, ``defocus_nm`` and
        ``pixel_size_pm`` are set by the sweep.
    """

    config_name: ClassVar[str] = "sweeps"
    SET_BY_SWEEP: ClassVar[tuple] = ("n_frames", "pixel_size_pm", "dose_e_per_A2", "defocus_nm",
                                     "frame_dose_e_per_A2", "frame_defocus_nm", "material")

    name: str = "sweep"
    material: str = "MoS2"
    dose_e_per_A2: tuple = (300.0, 1000.0, 3000.0, 1.0e4, 3.0e4, 1.0e5, 3.0e5)
    defocus_nm: tuple = (0.0,)
    pixel_size_pm: tuple = (20.0,)
    map_dose_e_per_A2: tuple = ()
    reference_dose_e_per_A2: float = 3.0e4
    seeds: int = 3
    truth_kinds: tuple = ()
    simulation: dict = field(default_factory=dict)

    def check(self, name: str = "sweeps") -> None:
        bad = lambda key, why: self._out_of_range(name, key, why)  # noqa: E731
        doses = list(self.dose_e_per_A2)
        if len(doses) < 2 or not all(d > 0 for d in doses) or doses != sorted(set(doses)):
            bad("dose_e_per_A2", "must be at least two distinct doses > 0, ascending")
        if 0.0 not in [float(d) for d in self.defocus_nm] or len(set(self.defocus_nm)) != len(self.defocus_nm):
            bad("defocus_nm", "must contain 0 (the in-focus dose sweep), without repeats")
        if not self.pixel_size_pm or not all(p > 0 for p in self.pixel_size_pm) \
                or len(set(self.pixel_size_pm)) != len(self.pixel_size_pm):
            bad("pixel_size_pm", "must be distinct pixel sizes > 0 (the first is the nominal one)")
        if not set(map(float, self.map_dose_e_per_A2)) <= set(map(float, doses)):
            bad("map_dose_e_per_A2", "must be doses of dose_e_per_A2")
        if float(self.reference_dose_e_per_A2) not in self.map_doses:
            bad("reference_dose_e_per_A2", "must be one of map_dose_e_per_A2 (or of dose_e_per_A2 when that is empty)")
        if self.material == AMORPHOUS:
            bad("material", "must be a crystal (the sweep curves are read against its lattice)")
        if self.seeds < 1:
            bad("seeds", "must be >= 1")
        clash = sorted(set(self.simulation) & set(self.SET_BY_SWEEP))
        if clash:
            bad("simulation", f"{', '.join(clash)} are set by the sweep, not by simulation")
        for dataset in self.datasets():
            SeriesSpec.from_mapping({k: v for k, v in dataset.items() if k not in ("name", "split", "truth_kinds")},
                                    name=f"{name}[{self.name}].simulation")

    @property
    def map_doses(self) -> tuple:
        """The doses of the decision maps (e/Å²), ascending."""
        return tuple(sorted(float(d) for d in (self.map_dose_e_per_A2 or self.dose_e_per_A2)))

    def grid(self, pixel_size_pm: float) -> list[tuple[float, float, int]]:
        """(dose e/Å², defocus nm, seed index) of each frame of one pixel size's series, in frame order."""
        nominal = pixel_size_pm == self.pixel_size_pm[0]
        points = [(float(dose), 0.0) for dose in (self.dose_e_per_A2 if nominal else self.map_doses)]
        if nominal:
            points += [(dose, float(df)) for df in self.defocus_nm if df != 0 for dose in self.map_doses]
        return [(dose, df, s) for (dose, df), s in itertools.product(points, range(self.seeds))]

    def dataset_name(self, pixel_size_pm: float) -> str:
        return f"sweep_{self.name}_{format(float(pixel_size_pm), 'g').replace('.', 'p')}pm"

    def datasets(self) -> list[dict]:
        """The dataset entries (config mappings) the sweep expands to, one per pixel size.

        Each simulates its grid as frames (``frame_dose_e_per_A2``,
        ``frame_defocus_nm``) with the simulation seed ``simulation.seed + k``
        for the k-th pixel size, and carries ``split: sweep`` and, where set,
        ``truth_kinds``.
        """
        base_seed = int(self.simulation.get("seed", SeriesSpec.seed))
        out = []
        for k, px in enumerate(self.pixel_size_pm):
            grid = self.grid(px)
            entry = {"astigmatism_nm": 0.0, **self.simulation, "name": self.dataset_name(px), "split": SWEEP_SPLIT,
                     "material": self.material, "pixel_size_pm": float(px), "n_frames": len(grid),
                     "frame_dose_e_per_A2": [d for d, _, _ in grid], "frame_defocus_nm": [f for _, f, _ in grid],
                     "seed": base_seed + k}
            if self.truth_kinds:
                entry["truth_kinds"] = list(self.truth_kinds)
            out.append(entry)
        return out

    def frame_table(self) -> list[dict]:
        """One record per frame of every dataset: ``dataset, frame, sweep, material, pixel_size_pm,
        dose_e_per_A2, defocus_nm, seed, nominal_pixel`` (True for the nominal pixel size)."""
        rows = []
        for px in self.pixel_size_pm:
            for frame, (dose, df, s) in enumerate(self.grid(px)):
                rows.append({"dataset": self.dataset_name(px), "frame": frame, "sweep": self.name,
                             "material": self.material, "pixel_size_pm": float(px), "dose_e_per_A2": dose,
                             "defocus_nm": df, "seed": s, "nominal_pixel": px == self.pixel_size_pm[0]})
        return rows


def expand_sweeps(sweeps: list[dict], name: str = "sweeps") -> tuple[list[SweepSpec], list[dict]]:
    """Check every sweep of a config and expand them to dataset entries.

    Parameters
    ----------
    sweeps : list of dict
        The config's ``sweeps`` list (:class:`SweepSpec` mappings).

    Returns
    -------
    specs : list of SweepSpec
    datasets : list of dict
        Dataset entries, in sweep order.

    Raises
    ------
    AtomlocInputError
        Naming the sweep and key of a bad value, or a repeated sweep name.
    """
    specs = [SweepSpec.from_mapping(dict(s), name=f"{name}[{s.get('name', k)}]") for k, s in enumerate(sweeps)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise AtomlocInputError(f"{name}: sweep names must be unique, got {names}")
    return specs, [d for s in specs for d in s.datasets()]
