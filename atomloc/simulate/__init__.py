"""Simulated HAADF-STEM data with known truth: structures, specimen, probe, rendering, series, library.

:func:`simulate_series` renders a :class:`~atomloc.io.series.Series` from a
:class:`SeriesSpec`; :func:`synthesize_library` renders the TEMImageNet-style
training library from a :class:`LibrarySpec`; :func:`simulate_multimodal` a HAADF frame with
per-element EDX maps (:class:`MultimodalSpec`); :func:`simulate_4dstem` an abTEM 4D-STEM scan.
"""

from atomloc.simulate.fourd import LIGHT_ELEMENTS, apply_dose, simulate_4dstem
from atomloc.simulate.library import LIBRARY_STRUCTURES, LibrarySpec, disc_map, peak_map, synthesize_library
from atomloc.simulate.multimodal import MultimodalSpec, simulate_multimodal
from atomloc.simulate.series import noise_free_peak_offsets, peak_offset_medians, simulate_series
from atomloc.simulate.spec import SERIES_MATERIALS, SIMULATORS, SeriesSpec
from atomloc.simulate.strain_fields import STRAIN_FIELDS, applied_strain
from atomloc.simulate.structures import AMORPHOUS, MATERIALS, build_atoms, project_columns

__all__ = ["AMORPHOUS", "LIBRARY_STRUCTURES", "LIGHT_ELEMENTS", "LibrarySpec", "MATERIALS", "MultimodalSpec",
           "SERIES_MATERIALS", "SIMULATORS", "STRAIN_FIELDS", "SeriesSpec", "applied_strain", "apply_dose",
           "build_atoms", "disc_map", "noise_free_peak_offsets", "peak_map", "peak_offset_medians", "project_columns",
           "simulate_4dstem", "simulate_multimodal", "simulate_series", "synthesize_library"]
