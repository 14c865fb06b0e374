"""Tiles of a large image: bounded memory for every locate method.

An image with a side longer than :data:`TILE_PX` is cut into *cores* that
partition it (at most :data:`TILE_PX` on a side, as equal as the side allows);
each core is widened by a margin (:func:`tile_margin`: a few column spacings)
into the *window* a method runs on, and a detection is kept only by the tile
whose core holds it (:func:`in_core`), so neighbouring windows overlap without
counting a column twice.  Memory then scales with the window, not the image.

Coordinates: pixels, x = column index, y = row index, pixel centres at
integers; pixel ``i`` covers ``[i - 0.5, i + 0.5)``.

This module holds the one tile size (:data:`TILE_PX`) that
:func:`atomloc.locate.registry.locate` and
:func:`atomloc.locate.columns.column_intensities` share, and the spacing a
tiled run measured once on the whole image (:func:`given_spacing`,
:func:`known_spacing`), which a method that finds its own spacing reads in each
tile so that all tiles agree.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

TILE_PX = 2048
"""Images with a side longer than this (pixels) are processed in tiles whose cores are at most this large."""

MARGIN_SPACINGS = 8.0
"""A window reaches this many column spacings beyond its core: the background filters of the
classical methods (:func:`atomloc.locate.noise.spacing_background`) see about 6 spacings."""

MIN_MARGIN_PX = 128
"""The smallest margin, pixels: covers the receptive field of the learned methods' U-Net
(96 px at the network's scale) where the spacing is small or unknown."""


@dataclass(frozen=True)
class Tile:
    """One tile: its core ``[r0, r1) x [c0, c1)`` and its window ``[wr0, wr1) x [wc0, wc1)`` (pixel indices)."""

    r0: int
    r1: int
    c0: int
    c1: int
    wr0: int
    wr1: int
    wc0: int
    wc1: int

    @property
    def window(self) -> tuple[slice, slice]:
        """The window as a pair of slices (rows, columns) of the image."""
        return slice(self.wr0, self.wr1), slice(self.wc0, self.wc1)


def needs_tiles(shape: tuple[int, ...], tile_px: int | None = None) -> bool:
    """Whether an image of ``shape`` (H, W) has a side longer than ``tile_px`` (default :data:`TILE_PX`)."""
    return max(shape) > (TILE_PX if tile_px is None else tile_px)


def tile_margin(spacing_px: float | None) -> int:
    """Margin (pixels) of a window beyond its core: :data:`MARGIN_SPACINGS` x spacing, at least
    :data:`MIN_MARGIN_PX`, at most half of :data:`TILE_PX`; :data:`MIN_MARGIN_PX` where the spacing is not known."""
    if spacing_px is None or not np.isfinite(spacing_px):
        return MIN_MARGIN_PX
    return int(min(max(math.ceil(MARGIN_SPACINGS * float(spacing_px)), MIN_MARGIN_PX), max(TILE_PX // 2, 1)))


def _edges(n: int, tile_px: int) -> list[int]:
    """Borders of ``ceil(n / tile_px)`` cores of (nearly) equal length covering ``[0, n)``."""
    k = max(1, math.ceil(n / tile_px))
    return [round(i * n / k) for i in range(k + 1)]


def tiles(shape: tuple[int, int], margin_px: int, tile_px: int | None = None) -> list[Tile]:
    """The tiles of an image of ``shape`` (H, W), row by row.

    Parameters
    ----------
    shape : (int, int)
        Image shape (H, W), pixels.
    margin_px : int
        How far each window reaches beyond its core (clipped at the image's border), pixels.
    tile_px : int, optional
        Largest core side, pixels; default :data:`TILE_PX`.

    Returns
    -------
    list of Tile
        Cores partition the image; an image no larger than ``tile_px`` is one tile.
    """
    tile_px = TILE_PX if tile_px is None else int(tile_px)
    h, w = shape
    rows, cols = _edges(h, tile_px), _edges(w, tile_px)
    out = []
    for r0, r1 in zip(rows[:-1], rows[1:]):
        for c0, c1 in zip(cols[:-1], cols[1:]):
            out.append(Tile(r0, r1, c0, c1, max(0, r0 - margin_px), min(h, r1 + margin_px),
                            max(0, c0 - margin_px), min(w, c1 + margin_px)))
    return out


def in_core(x, y, tile: Tile, shape: tuple[int, int]) -> np.ndarray:
    """Which positions (image pixels, x = column index) lie in ``tile``'s core.

    The core ``[r0, r1)`` holds ``r0 - 0.5 <= y < r1 - 0.5`` (pixel centres at
    integers); at the image's border it reaches to infinity, so a position a
    fit put just outside the image is still kept once.
    """
    h, w = shape
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    lo_y = -np.inf if tile.r0 == 0 else tile.r0 - 0.5
    hi_y = np.inf if tile.r1 >= h else tile.r1 - 0.5
    lo_x = -np.inf if tile.c0 == 0 else tile.c0 - 0.5
    hi_x = np.inf if tile.c1 >= w else tile.c1 - 0.5
    return (y >= lo_y) & (y < hi_y) & (x >= lo_x) & (x < hi_x)


_UNSET = object()
_SPACING: ContextVar = ContextVar("atomloc_tiled_spacing", default=_UNSET)


@contextlib.contextmanager
def given_spacing(spacing_px: float | None) -> Iterator[None]:
    """Within the block, :func:`known_spacing` returns ``spacing_px`` (pixels; None: no lattice was found).

    A tiled run (:func:`atomloc.locate.registry.locate`) measures the spacing
    of a method that finds its own once on the whole image and runs each tile
    inside this block, so that every tile resamples and judges noise at the
    same spacing as the untiled run would.
    """
    token = _SPACING.set(spacing_px)
    try:
        yield
    finally:
        _SPACING.reset(token)


def known_spacing(measure: Callable[[], float | None]) -> float | None:
    """The whole image's spacing inside :func:`given_spacing`, else ``measure()`` (pixels; None: no lattice)."""
    value = _SPACING.get()
    return measure() if value is _UNSET else value
