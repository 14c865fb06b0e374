"""Settings dataclasses built from a config mapping (series, library, training)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from atomloc.core.errors import AtomlocInputError


class FromMapping:
    """Mixin for frozen dataclasses of settings with a ``check(name)`` method.

    ``config_name`` is the config key used in error messages by default.
    """

    config_name: ClassVar[str] = "settings"

    @classmethod
    def from_mapping(cls, mapping: dict, name: str | None = None):
        """Build the settings from a config mapping (lists become tuples), checking keys and ranges.

        Unknown keys and values out of range raise :class:`AtomlocInputError` naming ``name``.
        """
        name = name or cls.config_name
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise AtomlocInputError(f"{name}: unknown keys {unknown}; expected {sorted(known)}")
        spec = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items()})
        spec.check(name)
        return spec

    def _out_of_range(self, name: str, key: str, why: str):
        """Raise :class:`AtomlocInputError` naming ``name.key``, the reason and the value."""
        raise AtomlocInputError(f"{name}.{key}: {why} (got {getattr(self, key)!r})")
