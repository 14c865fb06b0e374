"""Typed, range-checked parameters of the locate methods, declared once in the function signature.

A registered method annotates every keyword parameter with what it accepts::

    def gaussfit(image, spacing_px=AUTO, *,
                 threshold_rel: Annotated[float, Real(ge=0)] = 0.1, ...):

The registry (:mod:`atomloc.locate.registry`) reads the default and the
:class:`Param` from the signature; :meth:`Param.check` runs on every value a user
passes (Python, ``atomloc locate --param``, the workflow's config at parse time)
before any work, and fails in one line naming the parameter, the value and what
is allowed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from atomloc.core.errors import AtomlocInputError

AUTO = "auto"
"""A parameter value meaning "derived from the estimated spacing" (or found by the method itself)."""


@dataclass(frozen=True)
class Param:
    """What one method parameter accepts.

    Attributes
    ----------
    kind : str
        ``real`` (a finite number), ``int`` (an integer; an integral float is taken
        as one), ``flag`` (true or false), ``choice`` (one of ``choices``) or
        ``text`` (a string, matching ``pattern`` if given).
    gt, ge, lt, le : float, optional
        Bounds of a ``real`` or ``int``: greater than, at least, less than, at most.
    choices : tuple
        The allowed values of a ``choice``; for a ``real``, strings also allowed
        (e.g. ``"otsu"``).
    auto : bool
        ``"auto"`` is allowed too.
    pattern : str, optional
        Regular expression a ``text`` must match in full.
    what : str, optional
        How :meth:`describe` names an allowed ``text``.
    """

    kind: str
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple = ()
    auto: bool = False
    pattern: str | None = None
    what: str | None = None

    def describe(self) -> str:
        """What the parameter accepts, in words (``a number > 0 or 'auto'``)."""
        if self.kind == "choice":
            what = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "flag":
            what = "true or false"
        elif self.kind == "text":
            what = self.what or (f"a string matching {self.pattern!r}" if self.pattern else "a string")
        else:
            what = ("a number" if self.kind == "real" else "an integer") + self._bounds()
            what = " or ".join([what, *(repr(c) for c in self.choices)])
        return f"{what} or {AUTO!r}" if self.auto else what

    def _bounds(self) -> str:
        low = self.gt if self.gt is not None else self.ge
        high = self.lt if self.lt is not None else self.le
        if low is not None and high is not None:
            return f" in {'(' if self.gt is not None else '['}{low:g}, {high:g}{')' if self.lt is not None else ']'}"
        if low is not None:
            return f" {'>' if self.gt is not None else '>='} {low:g}"
        if high is not None:
            return f" {'<' if self.lt is not None else '<='} {high:g}"
        return ""

    def check(self, value, where: str):
        """Return ``value`` if allowed (an integral float as int for an ``int``), else raise.

        Raises
        ------
        AtomlocInputError
            ``"<where>=<value>: expected <describe()>"``.
        """
        if self.auto and isinstance(value, str) and value == AUTO:
            return value
        ok, out = self._accept(value)
        if not ok:
            raise AtomlocInputError(f"{where}={value!r}: expected {self.describe()}")
        return out

    def _accept(self, value):
        if self.kind == "choice" or (isinstance(value, str) and self.choices):
            return any(value == c and type(value) is type(c) for c in self.choices), value
        if self.kind == "flag":
            return isinstance(value, (bool, np.bool_)), value
        if self.kind == "text":
            return isinstance(value, str) and (self.pattern is None or re.fullmatch(self.pattern, value)), value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False, value
        if not math.isfinite(value):
            return False, value
        if self.kind == "int":
            if float(value) != int(value):
                return False, value
            value = int(value)
        in_range = ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                    and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))
        return in_range, value


def Real(*, gt=None, ge=None, lt=None, le=None, auto: bool = False, choices: tuple = ()) -> Param:
    """A finite number within the bounds (and the strings in ``choices``)."""
    return Param("real", gt, ge, lt, le, tuple(choices), auto)


def Int(*, gt=None, ge=None, lt=None, le=None, auto: bool = False) -> Param:
    """An integer within the bounds."""
    return Param("int", gt, ge, lt, le, (), auto)


def Flag(*, auto: bool = False) -> Param:
    """True or false (or ``"auto"`` with ``auto=True``)."""
    return Param("flag", auto=auto)


def Choice(*values, auto: bool = False) -> Param:
    """One of ``values``."""
    return Param("choice", choices=tuple(values), auto=auto)


def Text(*, pattern: str | None = None, auto: bool = False, what: str | None = None) -> Param:
    """A string (matching ``pattern`` in full, if given; ``what`` names it in messages)."""
    return Param("text", auto=auto, pattern=pattern, what=what)


SPACING = Real(gt=0, auto=True)
"""Every method's ``spacing_px``: the nearest-neighbour column spacing, pixels."""
