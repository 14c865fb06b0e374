"""Column locators: the registry and every registered method.

Importing this package registers the classical methods (:mod:`.classical`), the
peers (:mod:`.peers`) and the learned methods (:mod:`.learned`; PyTorch is
imported when one runs).  ``locate(image, method, **params)`` runs one.
"""

from atomloc.locate import classical, learned, peers  # noqa: F401  (registers the methods)
from atomloc.locate.findfoci import find_foci
from atomloc.locate.nets import ARCHITECTURES
from atomloc.locate.params import Choice, Flag, Int, Param, Real, Text
from atomloc.locate.refine import GaussianFit, fit_gaussians, refine_peaks
from atomloc.locate.registry import AUTO, Method, available_methods, get_method, locate, locate_series, register
from atomloc.locate.spacing import estimate_spacing

__all__ = ["ARCHITECTURES", "AUTO", "Choice", "Flag", "GaussianFit", "Int", "Method", "Param", "Real", "Text",
           "available_methods", "estimate_spacing", "find_foci", "fit_gaussians", "get_method", "locate",
           "locate_series", "refine_peaks", "register"]
