"""The networks of the learned locators and restorers (PyTorch, imported by :mod:`atomloc.locate.nets.models`).

:data:`ARCHITECTURES` names the learned methods once: each is a network
architecture, a registered locate method (:mod:`atomloc.locate.learned`) and a
model the workflow trains (:mod:`atomloc.learn`).  :data:`RESTORER` is the
U-Net of the restoration models (:mod:`atomloc.locate.restore`): the same
network with a linear residual head instead of the sigmoid map.  This module
does not import PyTorch, so a workflow can read the names cheaply.
"""

import os
from pathlib import Path

ATOMID = "atomid"
ATOMSEGNET = "atomsegnet"
ARCHITECTURES = (ATOMSEGNET, ATOMID)
RESTORER = "restorer"
NETWORKS = (*ARCHITECTURES, RESTORER)

#: Arithmetic of the networks' inference (:func:`atomloc.locate.nets.models.predict`): ``fp32``; ``bf16``
#: (bfloat16 autocast of the convolutions; the output head and the outputs in float32); ``auto`` = ``bf16``
#: for a locator (sigmoid output) on a CPU whose oneDNN runs bfloat16 natively, else ``fp32``.
PRECISIONS = ("auto", "fp32", "bf16")

#: The learned restorations, each a ``restorer`` trained on one target of the library
#: (:data:`atomloc.simulate.library.RESTORATION_LABELS`): TEMImageNet's noNoise,
#: noBackgroundnoNoise and noNoiseNoBackgroundSuperresolution.
RESTORATION_TARGETS = {"denoise": "no_noise", "denoise_bg": "no_background_no_noise", "superres": "superres"}

#: Targets without background (zero between columns): scaled like the input but not shifted,
#: since the input's shift (its dark level and background) is what they lack and the
#: network could not tell it from the normalised input (:func:`target_shift`).
BACKGROUND_FREE_TARGETS = ("no_background_no_noise", "superres")


def target_shift(target: str, lo: float) -> float:
    """The shift of a restoration target's normalisation ``(target - shift) / scale``: the input's
    ``lo`` for a target with background (``no_noise``), 0 for a background-free one."""
    return 0.0 if target in BACKGROUND_FREE_TARGETS else float(lo)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar beside a checkpoint: ``model.pt`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


__all__ = ["ARCHITECTURES", "ATOMID", "ATOMSEGNET", "BACKGROUND_FREE_TARGETS", "NETWORKS", "RESTORATION_TARGETS",
           "RESTORER", "sidecar_path", "target_shift"]
