"""The bottom layer: errors, settings, units and optics, geometry, image checks.

Imports nothing else of atomloc.
"""

from atomloc.core.errors import AtomlocInputError, MissingDependencyError
from atomloc.core.geometry import nearest_neighbour_spacing, parabolic_vertex, rotated_lattice_px
from atomloc.core.image import normalise, validate_image
from atomloc.core.optics import (FWHM_PER_SIGMA, circular_mask_radius_A, depth_of_field_nm, electron_wavelength_A,
                                 in_focus, probe_sigma_A)
from atomloc.core.settings import FromMapping

__all__ = ["AtomlocInputError", "FWHM_PER_SIGMA", "FromMapping", "MissingDependencyError", "circular_mask_radius_A",
           "depth_of_field_nm", "electron_wavelength_A", "in_focus", "nearest_neighbour_spacing", "normalise",
           "parabolic_vertex", "probe_sigma_A", "rotated_lattice_px", "validate_image"]
