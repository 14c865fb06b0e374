"""The networks of the learned locators (PyTorch, imported by :mod:`atomloc.locate.nets.models`).

:data:`ARCHITECTURES` names the learned methods once: each is a network
architecture, a registered locate method (:mod:`atomloc.locate.learned`) and a
model the workflow trains (:mod:`atomloc.learn`).  This module does not import
PyTorch, so a workflow can read the names cheaply.
"""

ATOMID = "atomid"
ATOMSEGNET = "atomsegnet"
ARCHITECTURES = (ATOMSEGNET, ATOMID)

__all__ = ["ARCHITECTURES", "ATOMID", "ATOMSEGNET"]
