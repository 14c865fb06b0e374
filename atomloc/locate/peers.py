"""Established tools run as peers: Atomap (optional extra ``atomloc[atomap]``).
"""

from __future__ import annotations

import warnings
from typing import Annotated

import numpy as np
import pandas as pd

from atomloc.core.errors import AtomlocInputError
from atomloc.locate.params import Choice, Int, Real
from atomloc.locate.registry import AUTO, _auto, register


@register("atomap",
          "Atomap (PyPI atomap): get_atom_positions with separation 0.45 x spacing (it must stay "
          "below spacing/sqrt(2)), Sublattice, centre-of-mass then 2-D elliptical Gaussian refinement.",
          requires=("atomap", "hyperspy"),
          extra="atomap",
          imports=("atomap.api", "hyperspy.api"))
def atomap_locate(image, spacing_px=AUTO, *, separation_px: Annotated[int | str, Int(ge=1, auto=True)] = AUTO,
                  threshold_rel: Annotated[float, Real(ge=0, le=1)] = 0.02,
                  percent_to_nn: Annotated[float, Real(gt=0, le=1)] = 0.4,
                  refine: Annotated[str, Choice("gaussian", "com", "none")] = "gaussian"):
    """Run the real Atomap library.

    ``separation_px`` auto = 0.45 x spacing (at least 2 px): Atomap's peak
    finder (``peak_local_max``) keeps a pixel only if it is the maximum of a
    square window of half-width ``separation``, whose corner reaches sqrt(2) x
    farther, so a separation at or above spacing / sqrt(2) loses columns; and
    where columns differ in brightness (Mo and S2 in MoS2) the bright
    neighbour's tail inside the window hides the dim column already at
    0.55 x spacing.  The image is shifted to a minimum of 0 (Atomap expects
    non-negative counts).  ``refine`` is ``"gaussian"``
    (centre of mass, then Atomap's 2-D Gaussian), ``"com"`` or ``"none"``.
    Atomap's coordinates are pixel indices, like ours.

    References
    ----------
    .. [1] M. Nord, P. E. Vullum, I. MacLaren, T. Tybell, R. Holmestad, "Atomap: a new software
       tool for the automated analysis of atomic resolution images using two-dimensional
       Gaussian fitting", Adv. Struct. Chem. Imaging 3, 9 (2017).
    """
    separation = int(_auto(separation_px, max(2, int(0.45 * spacing_px))))
    if not 1 <= separation < spacing_px / np.sqrt(2):
        raise AtomlocInputError(f"atomap: separation_px must be in [1, spacing/sqrt(2) = "
                                f"{spacing_px / np.sqrt(2):.1f}) (got {separation})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import atomap.api as am
        import hyperspy.api as hs

        img = np.asarray(image, dtype=np.float64)
        img = img - img.min()
        signal = hs.signals.Signal2D(img)
        start = am.get_atom_positions(signal, separation=separation, threshold_rel=float(threshold_rel))
        if len(start) == 0:
            return pd.DataFrame({"x": [], "y": []})
        sub = am.Sublattice(start, image=img)
        if refine != "none" and len(start) > 1:
            sub.find_nearest_neighbors()
            sub.refine_atom_positions_using_center_of_mass(percent_to_nn=float(percent_to_nn),
                                                           show_progressbar=False)
            if refine == "gaussian":
                sub.refine_atom_positions_using_2d_gaussian(percent_to_nn=float(percent_to_nn),
                                                            show_progressbar=False)
        return pd.DataFrame({"x": np.asarray(sub.x_position, float), "y": np.asarray(sub.y_position, float)})
