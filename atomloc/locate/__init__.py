"""Column locators: the registry and every registered method.

Importing this package registers the classical methods (:mod:`.classical`), the
peers (:mod:`.peers`), the learned methods (:mod:`.learned`; PyTorch is
imported when one runs) and the restorations (:mod:`.restore`).
``locate(image, method, **params)`` runs one; ``method@restoration`` runs it on
the restored image.
"""

from atomloc.locate import classical, learned, peers, restore  # noqa: F401  (registers the methods)
from atomloc.locate.findfoci import find_foci
from atomloc.locate.nets import ARCHITECTURES
from atomloc.locate.params import Choice, Flag, Int, Param, Real, Text
from atomloc.locate.refine import GaussianFit, fit_gaussians, refine_peaks
from atomloc.locate.registry import (AUTO, Method, available_methods, available_restorations, get_method, locate,
                                     locate_series, register)
from atomloc.locate.restore import restore
from atomloc.locate.spacing import estimate_spacing

__all__ = ["ARCHITECTURES", "AUTO", "Choice", "Flag", "GaussianFit", "Int", "Method", "Param", "Real", "Text",
           "available_methods", "available_restorations", "estimate_spacing", "find_foci", "fit_gaussians", "get_method", "locate",
           "locate_series", "refine_peaks", "register", "restore"]
