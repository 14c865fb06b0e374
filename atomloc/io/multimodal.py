"""Multi-modal fields (a HAADF frame + one EDX map per element) in one HDF5 file.

Layout: one group per field, holding ``haadf`` (H, W), ``edx`` (n, H, W), the
optional ``edx_truth`` (n, H, W) and ``haadf_clean``, the attribute
``elements`` (the maps' order) and the field's other attributes (pixel size,
counts per pixel, seed, ...), and a ``columns`` sub-group of per-column arrays
(``x``, ``y`` in pixels, x = column index; ``element``, ``pristine``, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from atomloc.core.errors import AtomlocInputError
from atomloc.io.files import atomic_path

_ARRAYS = ("haadf", "edx", "edx_truth", "haadf_clean")


def write_fields(path: str | os.PathLike, fields: Mapping[str, Mapping]) -> None:
    """Write fields (name -> :func:`atomloc.simulate.multimodal.simulate_multimodal`-style dict) atomically."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, fld in fields.items():
            g = f.create_group(name)
            for key in _ARRAYS:
                if fld.get(key) is not None:
                    g.create_dataset(key, data=np.asarray(fld[key]), compression="gzip", compression_opts=4)
            g.attrs["elements"] = json.dumps(list(fld["elements"]))
            for key, value in dict(fld.get("attrs", {})).items():
                g.attrs[key] = value
            cols = g.create_group("columns")
            for key, value in dict(fld.get("columns", {})).items():
                arr = np.asarray(value)
                cols.create_dataset(key, data=arr.astype("S") if arr.dtype.kind == "U" else arr)


def read_fields(path: str | os.PathLike, names=None) -> dict:
    """Read the fields of :func:`write_fields` (all, or those in ``names``), in file order."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise AtomlocInputError(f"{path}: no such multi-modal field file")
    try:
        with h5py.File(path, "r") as f:
            out = {}
            for name in f:
                if names is not None and name not in names:
                    continue
                g = f[name]
                fld = {key: g[key][()] for key in _ARRAYS if key in g}
                fld["elements"] = tuple(json.loads(g.attrs["elements"]))
                fld["attrs"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in g.attrs.items()
                                if k != "elements"}
                fld["columns"] = {k: (g["columns"][k][()].astype(str) if g["columns"][k].dtype.kind == "S"
                                      else g["columns"][k][()]) for k in g["columns"]}
                if "haadf" not in fld or "edx" not in fld:
                    raise AtomlocInputError(f"{path}: field {name!r} lacks its haadf or edx maps")
                out[name] = fld
    except (OSError, KeyError, ValueError) as err:
        raise AtomlocInputError(f"{path}: not a multi-modal field file ({err})") from None
    missing = set(names or ()) - set(out)
    if missing:
        raise AtomlocInputError(f"{path}: no field {sorted(missing)}")
    return out
