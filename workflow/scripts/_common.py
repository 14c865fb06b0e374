"""Shared start-up of the rule scripts: make ``atomloc`` importable and log to the rule's log.

Snakemake puts this directory on ``sys.path`` for every script it runs.  When the
package is not installed (e.g. inside a conda env built from ``envs/``), the
repository root is put on the path instead.
"""

import importlib.util
import logging
import sys
from pathlib import Path

if importlib.util.find_spec("atomloc") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def start_log(snakemake) -> logging.Logger:
    """Send logging and stderr (tracebacks included) to the rule's first log file."""
    stream = open(snakemake.log[0], "w", buffering=1)
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        force=True)
    logger = logging.getLogger(snakemake.rule)
    logger.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    return logger


def load_method(method: str, params: dict, threads: int) -> None:
    """Import a method's optional packages and load a learned method's model before any timed call,
    with torch limited to the rule's threads."""
    from atomloc.locate.nets import ARCHITECTURES
    from atomloc.locate.registry import get_method

    get_method(method).load()
    if method in ARCHITECTURES:
        import torch

        from atomloc.locate.learned import load_model

        torch.set_num_threads(threads)
        load_model(params.get("model", "auto"), method)
