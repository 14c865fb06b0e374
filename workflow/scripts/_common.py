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
    """Import a method's optional packages and load a learned method's model (and, for
    ``method@restoration``, the shipped restorer weights) before any timed call, with torch limited to
    the rule's threads."""
    from atomloc.locate.nets import ARCHITECTURES, RESTORATION_TARGETS, RESTORER
    from atomloc.locate.registry import get_method, get_restorations, split_method

    base, chain = split_method(method)
    get_method(method).load()
    restorers = [s.name for s in get_restorations(chain) if s.name in RESTORATION_TARGETS] if chain else []
    if base in ARCHITECTURES or restorers:
        import torch

        from atomloc.locate.learned import load_model, shipped_model

        torch.set_num_threads(threads)
        if base in ARCHITECTURES:
            load_model(params.get("model", "auto"), base)
        for name in restorers:  # the shipped restorer weights of method@restoration
            load_model(shipped_model(name), RESTORER)


def release_commit(scriptdir) -> dict:
    """``commit`` (git HEAD of the repository holding ``scriptdir``) and ``uncommitted_changes`` (the code,
    not the shipped models, differs from it); ``"unknown"`` / None outside a git checkout."""
    import subprocess

    try:
        # resolved: a rule's script path holds "rules/../scripts", whose parents[1] would be workflow/rules;
        # pathspecs from the top of the repository, wherever git runs
        git = {"capture_output": True, "text": True, "check": True, "cwd": Path(scriptdir).resolve().parents[1]}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **git).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)atomloc",
                                     ":(top)workflow", ":(top,exclude)atomloc/models"], **git).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", None
    return {"commit": commit, "uncommitted_changes": dirty}
