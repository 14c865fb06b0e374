"""atomloc: locate atom columns in atomic-resolution HAADF-STEM images.

Coordinates everywhere are pixels: ``x`` is the column index, ``y`` the row
index, and the centre of pixel (0, 0) is (0.0, 0.0).  Physical quantities carry
their unit in the name (``pixel_size_pm``, ``dose_e_per_A2``).

The package is layered; each layer imports only the layers before it:
``core`` < ``io`` < ``simulate``, ``locate`` < ``series`` < ``analysis`` < ``learn``
< ``plotting``, ``cli`` (see ``docs/architecture.md``).
"""

from atomloc.core.errors import AtomlocInputError

__version__ = "0.1.0"

__all__ = ["AtomlocInputError", "__version__"]
