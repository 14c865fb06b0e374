"""Exceptions raised by atomloc for bad input."""

from __future__ import annotations


class AtomlocInputError(ValueError):
    """Bad input: a missing or corrupt file, wrong shape or dtype, NaN, a constant
    image or a parameter out of range.

    The message always names the offending file or parameter so that a workflow
    log or the command line shows the cause in one line.
    """


class MissingDependencyError(AtomlocInputError):
    """A method needs an optional package that is not installed; the message says how to install it."""
