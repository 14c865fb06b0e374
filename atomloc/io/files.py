"""Atomic writes (a failure never leaves a partial output behind), with the umask's permissions,
and a check that an output can be written before the work that makes it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from atomloc.core.errors import AtomlocInputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the body raises, so no partial output
    survives.  The suffix of ``path`` is kept so that libraries choosing a format
    from the suffix behave as for the final name.  The file gets the permissions
    of a newly created one (``0666`` less the umask, e.g. ``0644``), not the
    ``0600`` of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_writable(path: str | os.PathLike) -> Path:
    """Check, before any work, that a file can be written at ``path``.

    Returns
    -------
    Path

    Raises
    ------
    AtomlocInputError
        ``"<path>: cannot write the output: ..."`` when ``path`` is a folder, a
        parent is a file, or the nearest existing folder is not writable.
    """
    path = Path(path)
    why = None
    if path.is_dir():
        why = "it is a folder"
    else:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            why = f"{parent} is a file, not a folder"
        elif not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            why = f"no permission to write in {parent}"
    if why:
        raise AtomlocInputError(f"{path}: cannot write the output: {why}")
    return path
