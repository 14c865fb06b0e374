"""What a result was computed with: interpreter, platform, package versions, threads, device.

One table of ``item, value`` strings, for the benchmark scripts and reports: the
same machine and environment give the same table, byte for byte (no timestamps,
no host names, no paths).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

import pandas as pd

NOT_INSTALLED = "not installed"
"""The value of a package that cannot be imported."""
UNSET = "unset"
"""The value of an environment variable that is not set."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that set the threads of PyTorch's and NumPy's math libraries."""
PACKAGES = (("numpy", "numpy"), ("scipy", "scipy"), ("scikit-image", "skimage"), ("pandas", "pandas"),
            ("torch", "torch"), ("snakemake", "snakemake"), ("atomloc", "atomloc"))
"""(distribution name, import name) of the packages whose version is reported, in table order."""


def _version(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except ImportError:
        return NOT_INSTALLED
    return str(getattr(module, "__version__", "unknown"))


def provenance(*, devices: Mapping | None = None) -> pd.DataFrame:
    """The software and hardware a computation ran on, as a two-column table.

    Parameters
    ----------
    devices : mapping, optional
        Further ``item -> value`` rows appended at the end, in the mapping's
        order (e.g. the accelerator a benchmark ran on); values are converted
        with ``str``.

    Returns
    -------
    DataFrame
        Columns ``item, value`` (both str), one row each, in this order:
        ``python`` (version), ``platform`` (:func:`platform.platform`),
        ``machine``, ``cpu_count`` (:func:`os.cpu_count`), the version of each
        package in :data:`PACKAGES` (``numpy, scipy, scikit-image, pandas,
        torch, snakemake, atomloc``; ``"not installed"`` where it cannot be
        imported), ``torch_num_threads`` (:func:`torch.get_num_threads`),
        ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` (value or ``"unset"``),
        ``torch_device`` (the device atomloc trains and infers on when none is
        given: :func:`atomloc.locate.nets.models.pick_device`),
        ``cuda_available``, then ``devices``.  Without PyTorch the last four
        torch rows read ``"not installed"``.

    Notes
    -----
    No timestamps and no host names: equal environments give equal tables
    (and equal CSV bytes), so a provenance table can sit under version control
    beside the results it describes.

    Examples
    --------
    >>> table = provenance(devices={"benchmark": "seed_spread"})
    >>> list(table.columns)
    ['item', 'value']
    """
    rows = [("python", platform.python_version()), ("platform", platform.platform()),
            ("machine", platform.machine()), ("cpu_count", str(os.cpu_count()))]
    rows += [(name, _version(module)) for name, module in PACKAGES]
    try:
        import torch
    except ImportError:
        torch = None
    rows.append(("torch_num_threads", str(torch.get_num_threads()) if torch is not None else NOT_INSTALLED))
    rows += [(var, os.environ.get(var, UNSET)) for var in THREAD_VARIABLES]
    if torch is not None:
        from atomloc.locate.nets.models import pick_device

        rows += [("torch_device", str(pick_device(None))), ("cuda_available", str(bool(torch.cuda.is_available())))]
    else:
        rows += [("torch_device", NOT_INSTALLED), ("cuda_available", NOT_INSTALLED)]
    rows += [(str(k), str(v)) for k, v in (devices or {}).items()]
    return pd.DataFrame(rows, columns=["item", "value"]).astype(str)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(provenance().to_markdown(index=False) + "\n")
