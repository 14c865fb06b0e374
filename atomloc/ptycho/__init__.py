"""Ptychography: the object phase from a 4D-STEM scan (PyTorch), and virtual images of the same electrons.

:func:`reconstruct_ptycho` fits object and probe to the diffraction intensities
(:mod:`atomloc.ptycho.model`); :func:`phase_on_scan_grid` puts the phase on the scan grid,
where :func:`virtual_images` (ADF, BF, iCoM) and the truth live.

Layer rank 2: imports :mod:`atomloc.core` and :mod:`atomloc.io` only.
"""

from atomloc.ptycho.model import forward_intensities, fresnel_propagator, initial_probe
from atomloc.ptycho.reconstruct import (
    A_to_object_px,
    PtychoResult,
    object_grid,
    object_px_to_A,
    phase_on_scan_grid,
    reconstruct_ptycho,
    scan_px_to_A,
)
from atomloc.ptycho.virtual import virtual_images

__all__ = ["A_to_object_px", "PtychoResult", "forward_intensities", "fresnel_propagator", "initial_probe",
           "object_grid", "object_px_to_A", "phase_on_scan_grid", "reconstruct_ptycho", "scan_px_to_A",
           "virtual_images"]
