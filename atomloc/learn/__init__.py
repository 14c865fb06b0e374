"""Training of the learned locators: settings (:class:`TrainSpec`), data, the loop.

:class:`TrainSpec` imports without PyTorch, so a workflow can check its config
cheaply; the rest (:mod:`.data`, :mod:`.train`) loads PyTorch when first used.
"""

import importlib

from atomloc.learn.spec import TARGETS, TrainSpec

_LAZY = {"TrainingSet": "atomloc.learn.data", "library_set": "atomloc.learn.data", "series_set": "atomloc.learn.data",
         "split_indices": "atomloc.learn.data", "train_model": "atomloc.learn.train",
         "validation_f1": "atomloc.learn.train"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TARGETS", "TrainSpec", *_LAZY]
