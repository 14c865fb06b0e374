"""The provenance table: every item, the imported modules' versions, the same bytes on every call."""

import os
import platform

import numpy
import pandas
import scipy
import skimage

import atomloc
from atomloc.analysis.provenance import provenance

ITEMS = ["python", "platform", "machine", "cpu_count", "numpy", "scipy", "scikit-image", "pandas", "torch",
         "snakemake", "atomloc", "torch_num_threads", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "torch_device",
         "cuda_available"]


def test_provenance_lists_versions_threads_and_device_and_is_deterministic():
    table = provenance(devices={"accelerator": "none", "slots": 2})
    assert list(table.columns) == ["item", "value"]
    assert table["item"].tolist() == ITEMS + ["accelerator", "slots"]
    assert table["value"].map(type).eq(str).all()
    value = dict(zip(table["item"], table["value"]))
    assert value["python"] == platform.python_version() and value["platform"] == platform.platform()
    assert value["cpu_count"] == str(os.cpu_count())
    for item, module in (("numpy", numpy), ("scipy", scipy), ("scikit-image", skimage), ("pandas", pandas),
                         ("atomloc", atomloc)):
        assert value[item] == module.__version__, item
    try:
        import torch
    except ImportError:
        assert value["torch"] == value["torch_device"] == "not installed"
    else:
        from atomloc.locate.nets.models import pick_device

        assert value["torch"] == torch.__version__
        assert value["torch_num_threads"] == str(torch.get_num_threads())
        assert value["torch_device"] == str(pick_device(None))
        assert value["cuda_available"] == str(torch.cuda.is_available())
    try:
        import snakemake
    except ImportError:
        assert value["snakemake"] == "not installed"
    else:
        assert value["snakemake"] == snakemake.__version__
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert value[var] == os.environ.get(var, "unset")
    assert value["accelerator"] == "none" and value["slots"] == "2"
    again = provenance(devices={"accelerator": "none", "slots": 2})
    assert table.equals(again)
    assert table.to_csv(index=False).encode() == again.to_csv(index=False).encode()
    assert provenance()["item"].tolist() == ITEMS
