"""Image series as HDF5: one file per region with ``frames`` float32 ``[n, H, W]``,
attributes for pixel size, material, simulator and seed, per-frame arrays and a
``truth`` group with the true column positions where known.

Every writer writes to a temporary file beside the target and renames it into
place, so a failure never leaves a partial output behind.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from atomloc.core.errors import AtomlocInputError
from atomloc.core.optics import in_focus
from atomloc.io.files import atomic_path
from atomloc.io.images import read_microscope_file

TRUTH_KEYS = ("x", "y", "element", "kind")
"""The datasets every ``truth`` group holds; further ones (``weight``, ``strain`` ...) are kept as extras."""


@dataclass
class Truth:
    """The true columns of a simulated series.

    Attributes
    ----------
    x, y : ndarray, shape (n_frames, m)
        Position of every column in every frame, pixels (x = column index, centre of
        pixel (0, 0) at (0.0, 0.0)).
    element, kind : ndarray of str, shape (m,)
        Column label (e.g. ``Mo``, ``S2``) and kind (``metal`` / ``chalcogen`` ...).
    extra : dict of str to ndarray
        Further per-column arrays, in file order (``weight``, ``occupancy``,
        ``peak_offset_px`` [n, m, 2], ``strain`` [m, 3] ...).
    """

    x: np.ndarray
    y: np.ndarray
    element: np.ndarray
    kind: np.ndarray
    extra: dict = field(default_factory=dict)

    def positions(self, frame: int, kinds: Sequence[str] | None = None) -> np.ndarray:
        """True (x, y) pixel positions of ``frame``, shape (m, 2); only columns of ``kinds`` if given."""
        keep = np.ones(self.x.shape[1], bool) if not kinds else np.isin(self.kind, list(kinds))
        return np.column_stack([self.x[frame][keep], self.y[frame][keep]])

    def as_arrays(self) -> dict:
        """All arrays by dataset name, the core ones first (the ``truth`` group's layout)."""
        return {"x": self.x, "y": self.y, "element": self.element, "kind": self.kind, **self.extra}

    @classmethod
    def from_arrays(cls, arrays: Mapping) -> "Truth":
        """Build from a mapping holding at least :data:`TRUTH_KEYS`."""
        missing = [k for k in TRUTH_KEYS if k not in arrays]
        if missing:
            raise AtomlocInputError(f"truth lacks {missing}")
        return cls(*(arrays[k] for k in TRUTH_KEYS), extra={k: v for k, v in arrays.items() if k not in TRUTH_KEYS})


@dataclass
class Series:
    """Frames of one region and what is known about them.

    Attributes
    ----------
    frames : ndarray of float32, shape (n, H, W)
        The frames (detector counts where ``attrs["intensity_unit"] == "counts"``).
    attrs : dict
        File attributes, in file order: ``pixel_size_pm`` (required) and the
        provenance (``material``, ``simulator``, ``seed``, ``energy_keV``,
        ``semiangle_mrad``, ``lattice_px``, ``source_files``, ``reference_index`` ...).
    arrays : dict of str to ndarray
        Per-frame arrays, in file order (``dose_e_per_A2`` [n], ``defocus_nm`` [n],
        ``drift_px`` [n, 2] as (x, y) pixels, ``scan_shift_px`` [n, H, 2] ...).
    truth : Truth or None
        The true columns (simulated series).
    name : str
        The dataset's name (used in tables and messages).
    clean : ndarray, shape (n, H, W), optional
        Expected counts without noise (simulated series only; not stored in files).
    """

    frames: np.ndarray
    attrs: dict
    arrays: dict = field(default_factory=dict)
    truth: Truth | None = None
    name: str = "series"
    clean: np.ndarray | None = None

    def __post_init__(self):
        self.frames = np.asarray(self.frames, dtype=np.float32)
        if self.frames.ndim != 3:
            raise AtomlocInputError(f"{self.name}: frames must be [n, H, W], got shape {self.frames.shape}")
        if not float(self.attrs.get("pixel_size_pm", float("nan"))) > 0:
            raise AtomlocInputError(f"{self.name}: attrs need pixel_size_pm > 0 "
                                    f"(got {self.attrs.get('pixel_size_pm')!r})")

    @property
    def pixel_size_pm(self) -> float:
        """Pixel size, pm."""
        return float(self.attrs["pixel_size_pm"])

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def shape_px(self) -> tuple[int, int]:
        """Frame shape (H, W), pixels."""
        return tuple(self.frames.shape[1:])

    @property
    def dose_e_per_A2(self) -> np.ndarray | None:
        """Dose of each frame, electrons per Å² (None where unknown)."""
        return self.arrays.get("dose_e_per_A2")

    @property
    def defocus_nm(self) -> np.ndarray | None:
        """Defocus of each frame, nm (None where unknown)."""
        return self.arrays.get("defocus_nm")

    @property
    def drift_px(self) -> np.ndarray | None:
        """Rigid drift (x, y) of each frame, pixels: the truth of a simulated series, the
        measured drift of an aligned one (None where unknown)."""
        return self.arrays.get("drift_px")

    @property
    def lattice_px(self) -> np.ndarray | None:
        """The unstrained lattice (rows a, b) in pixels of a simulated crystal, else None."""
        lattice = self.attrs.get("lattice_px")
        return None if lattice is None else np.asarray(lattice, dtype=np.float64)

    def in_focus(self) -> tuple[np.ndarray | None, float | None]:
        """Which frames were taken within half the probe's depth of field of focus.

        Returns
        -------
        in_focus : ndarray of bool, shape (n_frames,), or None
            ``|defocus_nm| <= half_dof_nm`` (:func:`atomloc.core.optics.in_focus`);
            None when the series stores no ``defocus_nm`` or no ``energy_keV`` and
            ``semiangle_mrad`` (real series).
        half_dof_nm : float or None
        """
        if self.defocus_nm is None or not {"energy_keV", "semiangle_mrad"} <= set(self.attrs):
            return None, None
        return in_focus(self.defocus_nm, self.attrs["energy_keV"], self.attrs["semiangle_mrad"])




def import_series(paths, pixel_size_pm: float | None = None, name: str = "series") -> Series:
    """Read a real series: one multi-frame microscope file, or several single-frame files.

    Parameters
    ----------
    paths : sequence of path-like
        The files, in frame order (a folder's files sorted by name).
    pixel_size_pm : float, optional
        Pixel size in pm; overrides the files' calibration (needed where they
        have none).

    name : str
        The dataset's name.

    Returns
    -------
    Series
        ``frames`` float32 [n, H, W] and ``attrs`` (``pixel_size_pm``,
        ``simulator`` = ``"none"``, ``source_files``), as
        :func:`atomloc.simulate.series.simulate_series` but without ``truth``.

    Raises
    ------
    AtomlocInputError
        Naming the file: unreadable, frames of different shapes, or no pixel
        size from either the files or ``pixel_size_pm``.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise AtomlocInputError("import_series: no files given")
    stacks, sizes = [], []
    for p in paths:
        frames, size, _ = read_microscope_file(p)
        if stacks and frames.shape[1:] != stacks[0].shape[1:]:
            raise AtomlocInputError(f"{p}: frames of shape {frames.shape[1:]}, but {paths[0]} has "
                                    f"{stacks[0].shape[1:]}")
        stacks.append(frames)
        sizes.append(size)
    if pixel_size_pm is None:
        if any(s is None for s in sizes):
            bad = paths[[s is None for s in sizes].index(True)]
            raise AtomlocInputError(f"{bad}: no length calibration in the file; give the pixel size in pm "
                                    "(import_series(pixel_size_pm=...); in the workflow, the dataset's "
                                    "pixel_size_override_pm)")
        if not np.allclose(sizes, sizes[0], rtol=1e-3):
            raise AtomlocInputError(f"{paths[0]}: files of one series have different pixel sizes {sizes} pm")
        pixel_size_pm = sizes[0]
    elif not pixel_size_pm > 0:
        raise AtomlocInputError(f"pixel_size_pm must be > 0 (got {pixel_size_pm})")
    attrs = {"pixel_size_pm": float(pixel_size_pm), "simulator": "none", "material": "unknown",
             "source_files": ";".join(p.name for p in paths)}
    return Series(np.concatenate(stacks), attrs, name=name)


def write_series(path: str | os.PathLike, series: Series, compression: str | None = None) -> None:
    """Write a :class:`Series` to HDF5 atomically and byte-reproducibly.

    Layout: dataset ``frames`` float32 [n, H, W]; the file attributes
    ``series.attrs``; every per-frame array of ``series.arrays`` as a top-level
    dataset; group ``truth`` (:meth:`Truth.as_arrays`) where known.  Everything is
    written in the order of the series' dicts, so equal series give equal bytes.

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file.
    series : Series
    compression : str, optional
        HDF5 filter for ``frames`` and the truth arrays (e.g. ``"gzip"``).
    """
    groups = {} if series.truth is None else {"truth": series.truth.as_arrays()}
    write_h5(path, series.frames, series.attrs, arrays=series.arrays, groups=groups, compression=compression)


def write_h5(path: str | os.PathLike, frames: np.ndarray, attrs: Mapping, arrays: Mapping | None = None,
             groups: Mapping[str, Mapping] | None = None, compression: str | None = None) -> None:
    """Write frames, attributes, top-level arrays and groups of arrays to HDF5, atomically.

    The one HDF5 writer of the package (series, training pairs, the library):
    no timestamps, so equal inputs give equal bytes.

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file.
    frames : ndarray, shape (n, H, W)
        Stored as float32 in dataset ``frames``.
    attrs : mapping
        File attributes.
    arrays : mapping of str to ndarray, optional
        Top-level datasets.
    groups : mapping of str to mapping, optional
        Groups of arrays, name -> {dataset name: array}.
    compression : str, optional
        HDF5 filter for ``frames`` and the group arrays of 2 or more dimensions.
    """
    import h5py

    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3:
        raise ValueError(f"{path}: frames must be [n, H, W], got shape {frames.shape}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            f.create_dataset("frames", data=frames, track_times=False, compression=compression)
            for key, value in attrs.items():
                f.attrs[key] = value
            for key, value in (arrays or {}).items():
                f.create_dataset(key, data=_h5_array(value), track_times=False)
            for name, members in (groups or {}).items():
                g = f.create_group(name, track_order=False)
                for key, value in members.items():
                    arr = _h5_array(value)
                    g.create_dataset(key, data=arr, track_times=False,
                                     compression=compression if arr.ndim >= 2 else None)


def _h5_array(value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind in ("U", "O"):
        return arr.astype("S")
    return arr


def _decode(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "S":
        return arr.astype(str)
    return arr


@contextlib.contextmanager
def _open_series(path: Path):
    """Open a series HDF5 for reading; missing or unreadable files raise AtomlocInputError naming it."""
    import h5py

    if not path.is_file():
        raise AtomlocInputError(f"{path}: series file not found")
    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        raise AtomlocInputError(f"{path}: cannot read series ({type(exc).__name__}: {exc})") from exc
    with f:
        if "frames" not in f or f["frames"].ndim != 3:
            raise AtomlocInputError(f"{path}: series file has no [n, H, W] 'frames' dataset")
        try:
            yield f
        except AtomlocInputError:
            raise
        except Exception as exc:  # a corrupt dataset surfaces only when read
            raise AtomlocInputError(f"{path}: cannot read series ({type(exc).__name__}: {exc})") from exc


def read_series(path: str | os.PathLike, name: str | None = None) -> Series:
    """Read a series written by :func:`write_series`.

    Parameters
    ----------
    path : path-like
    name : str, optional
        The dataset's name (default: the file's stem).

    Returns
    -------
    Series
        Per-frame arrays and truth datasets in the file's (alphabetical) order.

    Raises
    ------
    AtomlocInputError
        If the file is missing, not HDF5, lacks ``frames`` or ``pixel_size_pm``,
        the frames are not [n, H, W] or hold NaN, or the truth is incomplete.
    """
    import h5py

    path = Path(path)
    with _open_series(path) as f:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        arrays = {key: _decode(obj[()]) for key, obj in f.items() if isinstance(obj, h5py.Dataset)}
        truth = {k: _decode(v[()]) for k, v in f["truth"].items()} if "truth" in f else None
    frames = arrays.pop("frames")
    if not np.all(np.isfinite(frames)):
        raise AtomlocInputError(f"{path}: 'frames' contains NaN or infinite pixels")
    try:
        return Series(frames, attrs, arrays, None if truth is None else Truth.from_arrays(truth),
                      name=path.stem if name is None else name)
    except AtomlocInputError as exc:
        raise AtomlocInputError(f"{path}: {exc}") from None


def read_frame(path: str | os.PathLike, frame: int) -> tuple[np.ndarray, dict]:
    """Read one frame of a series (only that frame is loaded) and the file attributes.

    Returns
    -------
    frame : ndarray of float32, shape (H, W)
    attrs : dict

    Raises
    ------
    AtomlocInputError
        If the file is missing or unreadable, lacks ``frames``, the index is out
        of range, or the frame holds NaN.
    """
    path = Path(path)
    with _open_series(path) as f:
        n = f["frames"].shape[0]
        if not 0 <= frame < n:
            raise AtomlocInputError(f"{path}: frame {frame} requested but the series has {n}")
        image = f["frames"][frame]
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if not np.all(np.isfinite(image)):
        raise AtomlocInputError(f"{path}: frame {frame} contains NaN or infinite pixels")
    return image, attrs


def _attr(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
