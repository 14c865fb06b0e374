"""Files: images and microscope formats, series HDF5 (:class:`Series`), positions CSV, training data,
multi-modal fields (HAADF + EDX) and 4D-STEM scans.

Every writer writes to a temporary file beside the target and renames it into
place, so a failure never leaves a partial output behind.
"""

from atomloc.io.files import atomic_path, check_writable
from atomloc.io.fourd import FourDSTEM, read_4dstem, write_4dstem
from atomloc.io.images import IMAGE_SUFFIXES, read_image, read_microscope_file, read_stack
from atomloc.io.multimodal import read_fields, write_fields
from atomloc.io.positions import CSV_FLOAT_FORMAT, read_positions, write_positions
from atomloc.io.series import Series, Truth, import_series, read_frame, read_series, write_h5, write_series
from atomloc.io.training import read_library, read_training_pairs, write_library, write_training_pairs

__all__ = ["CSV_FLOAT_FORMAT", "FourDSTEM", "IMAGE_SUFFIXES", "Series", "Truth", "atomic_path", "check_writable",
           "import_series", "read_4dstem", "read_fields", "read_frame", "read_image", "read_library",
           "read_microscope_file", "read_positions", "read_series", "read_stack", "read_training_pairs", "write_4dstem",
           "write_fields", "write_h5", "write_library", "write_positions", "write_series", "write_training_pairs"]
