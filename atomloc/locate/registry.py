"""The registry of column-locating methods.

A method is a function ``locate(image, spacing_px, **params) -> DataFrame`` with
columns ``x, y`` (pixels; x = column index, centre of pixel (0, 0) at (0, 0))
and optional ``score, sigma``, registered under a name with its default
parameters.  The value ``"auto"`` means "derived from the estimated
nearest-neighbour spacing" (:func:`atomloc.locate.spacing.estimate_spacing`), so every
method runs untuned on spacings from about 4 to 40 pixels.

Add a method by decorating its function with :func:`register` and listing its
name under ``methods:`` in ``config.yaml``.

Restorations (:mod:`atomloc.locate.restore`) register here too
(:func:`register_restoration`): ``"<method>@<restoration>"`` locates with
``<method>`` on the restored image (:func:`locate`), and ``<restoration>`` may
chain several with ``+`` (``bm3d+bg``: BM3D, then background removal).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from atomloc.core.errors import AtomlocInputError, MissingDependencyError
from atomloc.core.geometry import nearest_neighbour_spacing
from atomloc.core.image import validate_image
from atomloc.locate import tiles
from atomloc.locate.columns import annotate_columns, check_columns, keep_columns
from atomloc.locate.params import AUTO, SPACING, Param
from atomloc.locate.spacing import estimate_spacing


def _check_requires(what: str, requires: tuple[str, ...], extra: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``what``, the modules of ``requires`` that are not
    installed and how to install them (the package extra ``extra``, else pip)."""
    missing = [mod for mod in requires if importlib.util.find_spec(mod) is None]
    if missing:
        hint = f"pip install 'atomloc[{extra}]'" if extra else f"pip install {' '.join(missing)}"
        raise MissingDependencyError(
            f"{what} needs {', '.join(missing)}, which is not installed; install it with: {hint}")


@dataclass(frozen=True)
class Method:
    """A registered locate function, its default parameters and what each accepts."""

    name: str
    func: Callable[..., pd.DataFrame]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Param] = field(default_factory=dict)
    description: str = ""
    requires: tuple[str, ...] = ()
    extra: str = ""
    imports: tuple[str, ...] = ()
    needs_spacing: bool = True
    tile_spacing: Callable[[np.ndarray, str], float | None] | None = None

    def missing(self) -> list[str]:
        """Importable modules this method needs that are not installed."""
        return [mod for mod in self.requires if importlib.util.find_spec(mod) is None]

    def load(self) -> None:
        """Import the method's heavy optional modules now, so that a timed call excludes their import."""
        self.check_installed()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for module in self.imports:
                importlib.import_module(module)

    def check_installed(self) -> None:
        """Raise :class:`MissingDependencyError` naming how to install what is missing."""
        _check_requires(f"method {self.name!r}", self.requires, self.extra)

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict:
        """Merge ``params`` over the defaults, each checked by its :class:`~atomloc.locate.params.Param`.

        Raises
        ------
        AtomlocInputError
            One line naming the method and an unknown parameter, or the parameter,
            its value and what it accepts.
        """
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise AtomlocInputError(
                f"method {self.name!r}: unknown parameter(s) {unknown}; valid: {sorted(self.defaults)}")
        checked = {k: self.params[k].check(v, f"method {self.name!r}: {k}") for k, v in params.items()}
        return {**self.defaults, **checked}


_REGISTRY: dict[str, Method] = {}


def signature_params(func: Callable) -> tuple[dict, dict]:
    """The parameters of a locate function: their defaults and what each accepts, read from its signature.

    The signature is the one source of a method's parameters: ``image`` first, then
    ``spacing_px="auto"``, then keyword parameters that all have a default and an
    ``Annotated[<type>, Param]`` annotation (:mod:`atomloc.locate.params`).

    Returns
    -------
    defaults : dict
        Name -> default, ``spacing_px`` first.
    params : dict
        Name -> :class:`~atomloc.locate.params.Param`.

    Raises
    ------
    TypeError
        If the signature does not have that form, or a default is not accepted by
        its own :class:`~atomloc.locate.params.Param`.
    """
    params = list(inspect.signature(func, eval_str=True).parameters.values())
    where = f"{func.__module__}.{func.__qualname__}"
    if len(params) < 2 or params[0].name != "image" or params[1].name != "spacing_px":
        raise TypeError(f"{where}: a locate function takes (image, spacing_px={AUTO!r}, *, ...)")
    if params[1].default != AUTO:
        raise TypeError(f"{where}: spacing_px must default to {AUTO!r} (got {params[1].default!r})")
    bad = [p.name for p in params[1:] if p.default is inspect.Parameter.empty
           or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if bad:
        raise TypeError(f"{where}: parameters {bad} need defaults (no *args / **kwargs)")
    specs = {"spacing_px": SPACING}
    for p in params[2:]:
        found = [m for m in getattr(p.annotation, "__metadata__", ()) if isinstance(m, Param)]
        if typing.get_origin(p.annotation) is not typing.Annotated or not found:
            raise TypeError(f"{where}: parameter {p.name} needs an Annotated[<type>, Param] annotation")
        specs[p.name] = found[0]
        try:
            found[0].check(p.default, p.name)
        except AtomlocInputError as exc:
            raise TypeError(f"{where}: the default disagrees with the declared parameter: {exc}") from None
    return {p.name: p.default for p in params[1:]}, specs


def register(name: str, description: str, requires: tuple[str, ...] = (), extra: str = "",
             imports: tuple[str, ...] = (), needs_spacing: bool = True,
             tile_spacing: Callable[[np.ndarray, str], float | None] | None = None):
    """Register ``func`` as method ``name``; its defaults are those of its signature.

    Every method takes ``spacing_px`` (default ``"auto"``) and keyword
    parameters with defaults and typed, range-checked annotations
    (:func:`signature_params`), so a method's parameters are declared once.  ``requires``
    lists the optional top-level packages the method needs (checked without
    importing them), ``extra`` the package extra that installs them and
    ``imports`` the modules it imports when it runs (see :meth:`Method.load`).
    With ``needs_spacing=False`` an ``"auto"`` spacing is passed on as
    ``"auto"`` (the method finds its own) instead of being estimated first;
    ``tile_spacing(image, name)`` is then that method's own rule for the
    spacing (pixels, None: no lattice), which a tiled run (:func:`locate`)
    applies once to the whole image and gives every tile
    (:func:`atomloc.locate.tiles.given_spacing`).

    Raises
    ------
    ValueError
        If ``name`` is already registered.
    TypeError
        If the signature is not that of a locate function, or a default is outside
        its declared range.
    """
    def decorator(func):
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is already registered")
        defaults, params = signature_params(func)
        _REGISTRY[name] = Method(name, func, defaults, params, description, tuple(requires), extra, tuple(imports),
                                 needs_spacing, tile_spacing)
        return func

    return decorator


@dataclass(frozen=True)
class Restoration:
    """A registered restoration: ``func(image, spacing_px) -> restored image`` (same shape, image units).

    ``spacing_px`` is the column spacing in pixels, or None where the image shows
    no lattice (a restoration with ``needs_spacing`` is then refused).
    ``gate(raw image, detections, spacing_px or None) -> detections`` keeps what a
    locator found on the restored image only where the raw image backs it;
    ``spacing(image, name) -> float or None`` is the rule that measures the
    spacing where none is given; ``requires``/``extra`` as for :class:`Method`.
    """

    name: str
    func: Callable[[np.ndarray, float | None], np.ndarray]
    gate: Callable[[np.ndarray, pd.DataFrame, float | None], pd.DataFrame]
    spacing: Callable[[np.ndarray, str], float | None]
    description: str = ""
    needs_spacing: bool = False
    requires: tuple[str, ...] = ()
    extra: str = ""

    def check_installed(self) -> None:
        """Raise :class:`MissingDependencyError` naming how to install what is missing."""
        _check_requires(f"restoration {self.name!r}", self.requires, self.extra)


_RESTORATIONS: dict[str, Restoration] = {}

RESTORE_SEP, CHAIN_SEP = "@", "+"


def register_restoration(name: str, description: str, gate, spacing, needs_spacing: bool = False,
                         requires: tuple[str, ...] = (), extra: str = ""):
    """Register ``func(image, spacing_px) -> image`` as restoration ``name`` (see :class:`Restoration`)."""
    def decorator(func):
        if name in _RESTORATIONS or RESTORE_SEP in name or CHAIN_SEP in name:
            raise ValueError(f"restoration {name!r} is already registered or holds {RESTORE_SEP!r}/{CHAIN_SEP!r}")
        _RESTORATIONS[name] = Restoration(name, func, gate, spacing, description, needs_spacing, tuple(requires),
                                          extra)
        return func

    return decorator


def restoration_spacing(steps: list[Restoration], image: np.ndarray, spacing_px, name: str) -> float | None:
    """The spacing (pixels) a chain of restorations works at: ``spacing_px`` if given, else the first
    step's rule (None: no lattice); one line naming the image where a step needs one and none is found."""
    spacing = float(spacing_px) if spacing_px not in (None, AUTO) else steps[0].spacing(image, name)
    needy = [s.name for s in steps if s.needs_spacing]
    if spacing is None and needy:
        raise AtomlocInputError(f"{name}: restoration {', '.join(needy)} needs the column spacing and no lattice "
                                "was found; give it (--spacing-px / spacing_px)")
    return spacing


def available_restorations() -> list[str]:
    """Names of all registered restorations, sorted."""
    return sorted(_RESTORATIONS)


def get_restorations(chain: str) -> list[Restoration]:
    """The restorations of ``chain`` (``"bm3d+bg"``: applied left to right), each checked to exist."""
    steps = chain.split(CHAIN_SEP)
    unknown = [s for s in steps if s not in _RESTORATIONS]
    if unknown:
        raise AtomlocInputError(f"restoration {chain!r}: {', '.join(map(repr, unknown))} not registered; "
                                f"available: {', '.join(available_restorations())} (chain them with {CHAIN_SEP!r})")
    return [_RESTORATIONS[s] for s in steps]


def split_method(name: str) -> tuple[str, str | None]:
    """``"gaussfit@bm3d+bg"`` -> ``("gaussfit", "bm3d+bg")``; a plain method name -> ``(name, None)``."""
    base, sep, chain = str(name).partition(RESTORE_SEP)
    return base, (chain if sep else None)


def get_method(name: str) -> Method:
    """Return the registered method ``name``; for ``"<method>@<restoration>"`` the method, the
    restoration checked to exist (:func:`get_restorations`)."""
    name, chain = split_method(name)
    if chain is not None:
        get_restorations(chain)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AtomlocInputError(
            f"method {name!r} is not registered; available: {', '.join(available_methods())}") from None


def available_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return sorted(_REGISTRY)


def locate(image: np.ndarray, method: str, pixel_size_pm: float | None = None, name: str = "image",
           columns: str = "all", **params) -> pd.DataFrame:
    """Locate atom columns in ``image`` with a registered method.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Grey image, any units; checked by :func:`atomloc.core.image.validate_image`.
    method : str
        Registered method name (see :func:`available_methods`), or
        ``"<method>@<restoration>"``: the method runs on the image restored by
        the registered restoration (chain: ``a+b``, see :func:`get_restorations`)
        with the parameters it would have on the raw image (its spacing estimated
        there); the restoration and its gate work at the spacing given, else at
        the restoration's own spacing rule (the nearest-neighbour distance,
        :func:`atomloc.locate.learned.column_spacing`; None where there is no
        lattice); what the method finds is kept where the raw image backs it (the
        restoration's gate), and intensities and sublattices are measured on the
        raw image.
    pixel_size_pm : float, optional
        Pixel size in pm; recorded only (all method parameters are in pixels).
    name : str
        File or image name used in error messages.
    columns : {"all", "heavy"}
        Return every column found, or only the brightest sublattice
        (:func:`atomloc.locate.columns.keep_columns`).
    **params
        Method parameters overriding the defaults; ``"auto"`` values are derived
        from the estimated spacing.

    Returns
    -------
    DataFrame
        Columns ``x, y`` in pixels, per method ``score`` and ``sigma``, and for
        every method ``intensity`` (background-subtracted, summed over a disc of
        0.35 x spacing) and ``sublattice`` (0 = brightest;
        :func:`atomloc.locate.columns.annotate_columns`).

    Notes
    -----
    An image with a side longer than :data:`atomloc.locate.tiles.TILE_PX`
    (2048 px) is processed in overlapping tiles, so that memory stays bounded
    (:func:`_locate_tiled`); smaller images go through the method whole.
    """
    m = get_method(method)
    chain = split_method(method)[1]
    steps = get_restorations(chain) if chain is not None else []
    resolved = m.resolve(params)
    check_columns(columns, name)  # checked before any work
    m.check_installed()
    for step in steps:
        step.check_installed()
    image = validate_image(image, name)
    if pixel_size_pm is not None and not (pixel_size_pm > 0 and math.isfinite(pixel_size_pm)):
        raise AtomlocInputError(f"{name}: pixel_size_pm must be a finite number > 0 (got {pixel_size_pm})")
    # a restoration works at the spacing given, else at its own rule's (the nearest-neighbour distance)
    restore_spacing = restoration_spacing(steps, image, resolved["spacing_px"], name) if steps else None
    if resolved["spacing_px"] == AUTO and m.needs_spacing:
        resolved["spacing_px"] = estimate_spacing(image, name=name)
    work = image
    for step in steps:
        work = validate_image(step.func(work, restore_spacing), f"{name} restored by {step.name}")
    if tiles.needs_tiles(work.shape):
        out = _locate_tiled(m, work, resolved, name)
    else:
        out = m.func(work, **resolved).reset_index(drop=True)
    if steps:
        out = steps[-1].gate(image, out, restore_spacing).reset_index(drop=True)
    spacing = resolved["spacing_px"]
    if spacing == AUTO:  # a method that finds its own scale: the spacing of what it found
        spacing = nearest_neighbour_spacing(out[["x", "y"]].to_numpy()) if len(out) > 1 else 1.0
    return keep_columns(annotate_columns(image, out, spacing_px=float(spacing)), columns, name)


def _locate_tiled(m: Method, image: np.ndarray, resolved: dict, name: str) -> pd.DataFrame:
    """Run method ``m`` on the overlapping tiles of a large image; its detections in image pixels.

    The spacing is found once on the whole image: the estimate ``locate``
    passed in ``resolved["spacing_px"]``, or for a method that finds its own
    (``needs_spacing=False``) its :attr:`Method.tile_spacing` rule, which each
    tile reads through :func:`atomloc.locate.tiles.given_spacing`.  Each tile's
    window reaches :func:`atomloc.locate.tiles.tile_margin` (8 spacings, at
    least 128 px) beyond its core (:func:`atomloc.locate.tiles.tiles`); the
    detections in the core (:func:`atomloc.locate.tiles.in_core`) are shifted
    to image pixels (x = column index, pixel centres at integers) and
    concatenated, tile by tile (row by row).  A tqdm progress bar counts the
    tiles where there are more than four (on a terminal).

    What a method takes over its whole input (the noise level, the 0-1 scaling
    percentiles, an Otsu threshold, the median column width, the network's
    input scaling) is each tile's own.  On a square lattice (``tests/test_tiles.py``)
    gaussfit, log and findfoci find the same columns to 0.01 px as the untiled
    run, seams included; the Otsu threshold of ``threshold_centroid`` moves its
    centroids by up to 0.3 px; the learned methods, which resample and scale
    each tile on their own, move by a median 0.05 px (95 % within 0.12 px;
    their error against the truth is 0.15 px either way).
    """
    from tqdm import tqdm

    spacing = resolved["spacing_px"]
    if spacing == AUTO:
        known = m.tile_spacing(image, name) if m.tile_spacing is not None else None
    else:
        known = float(spacing)
    grid = tiles.tiles(image.shape, tiles.tile_margin(known))
    parts = []
    with tiles.given_spacing(known):
        for t in tqdm(grid, desc=f"{name}: {m.name} tiles", disable=True if len(grid) <= 4 else None,
                      leave=False):
            found = m.func(np.ascontiguousarray(image[t.window]), **resolved).reset_index(drop=True)
            found["x"] = found["x"] + t.wc0
            found["y"] = found["y"] + t.wr0
            parts.append(found[tiles.in_core(found["x"], found["y"], t, image.shape)])
    kept = [p for p in parts if len(p)] or parts[:1]
    return pd.concat(kept, ignore_index=True)


def locate_series(frames: np.ndarray, method: str, pixel_size_pm: float | None = None, name: str = "series",
                  columns: str = "all", **params) -> tuple[pd.DataFrame, list[float]]:
    """Locate atom columns in every frame of a series with one method.

    Parameters
    ----------
    frames : ndarray, shape (n, H, W)
        The frames.
    method, pixel_size_pm, columns, **params
        As for :func:`locate`.
    name : str
        Series name used in error messages (``"<name>[frame k]"``).

    Returns
    -------
    positions : DataFrame
        ``frame`` (int) followed by the columns :func:`locate` returns, frames in order.
    seconds : list of float
        Wall-clock seconds spent in :func:`locate` for each frame.

    Where the method needs the spacing and none is given, it is estimated per
    frame; a frame with no lattice of its own (too low a dose) takes the
    median of the other frames' estimates, and only a series where no frame
    shows a lattice raises.
    """
    import time

    from atomloc.locate.spacing import estimate_spacing

    m = get_method(method)
    estimate = m.needs_spacing and params.get("spacing_px", AUTO) == AUTO
    tables, seconds, spacing, failed = {}, {}, {}, {}
    for k, image in enumerate(frames):
        t0 = time.perf_counter()
        frame_params = dict(params)
        if estimate:
            try:
                frame_params["spacing_px"] = spacing[k] = estimate_spacing(image, name=f"{name}[frame {k}]")
            except AtomlocInputError as exc:
                failed[k], seconds[k] = exc, time.perf_counter() - t0
                continue
        tables[k] = locate(image, method, pixel_size_pm=pixel_size_pm, name=f"{name}[frame {k}]", columns=columns,
                           **frame_params)
        seconds[k] = time.perf_counter() - t0
    if failed and not spacing:
        raise next(iter(failed.values()))
    # Frames too noisy for a lattice of their own (the lowest doses) take the median spacing of
    # the series' other frames: the same region at the same pixel size.
    for k in failed:
        t0 = time.perf_counter()
        tables[k] = locate(frames[k], method, pixel_size_pm=pixel_size_pm, name=f"{name}[frame {k}]",
                           columns=columns, **{**params, "spacing_px": float(np.median(list(spacing.values())))})
        seconds[k] += time.perf_counter() - t0
    for k in tables:
        tables[k].insert(0, "frame", k)
    order = sorted(tables)
    return pd.concat([tables[k] for k in order], ignore_index=True), [seconds[k] for k in order]


def _auto(value, default):
    return default if value == AUTO else value


def _positive(name, value):
    if not value > 0:
        raise AtomlocInputError(f"parameter {name} must be > 0 (got {value})")
    return value
