"""Simulated HAADF-STEM data with known truth: structures, specimen, probe, rendering, series, library.

:func:`simulate_series` renders a :class:`~atomloc.io.series.Series` from a
:class:`SeriesSpec`; :func:`synthesize_library` renders the TEMImageNet-style
training library from a :class:`LibrarySpec`.
"""

from atomloc.simulate.library import LIBRARY_STRUCTURES, LibrarySpec, disc_map, peak_map, synthesize_library
from atomloc.simulate.series import noise_free_peak_offsets, peak_offset_medians, simulate_series
from atomloc.simulate.spec import SERIES_MATERIALS, SIMULATORS, SeriesSpec
from atomloc.simulate.strain_fields import STRAIN_FIELDS, applied_strain
from atomloc.simulate.structures import AMORPHOUS, MATERIALS, build_atoms, project_columns

__all__ = ["AMORPHOUS", "LIBRARY_STRUCTURES", "LibrarySpec", "MATERIALS", "SERIES_MATERIALS", "SIMULATORS",
           "STRAIN_FIELDS", "SeriesSpec", "applied_strain", "build_atoms", "disc_map", "noise_free_peak_offsets",
           "peak_map", "peak_offset_medians", "project_columns", "simulate_series", "synthesize_library"]
