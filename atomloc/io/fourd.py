"""4D-STEM scans as HDF5: ``data`` float32 ``[ny_scan, nx_scan, ky, kx]`` chunked per scan row,
attributes for every calibration, an optional ``clean`` dataset (expected intensities) and a
``truth`` group with the true columns (x, y in scan pixels, element, kind, light).

Conventions (:mod:`atomloc.ptycho.model`): per-axis grid quantities are ``(y, x)``; scan
pixel ``(i, j)`` is at ``scan_origin_A + (i sy, j sx)`` Å; the zero scattering angle is
detector pixel ``(ky // 2, kx // 2)``.  The writer writes to a temporary file beside the
target and renames it into place, so a failure never leaves a partial output behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atomloc.core.errors import AtomlocInputError
from atomloc.io.files import atomic_path

CALIBRATION_ATTRS = ("scan_sampling_A", "scan_origin_A", "reciprocal_sampling_per_A", "angular_sampling_mrad",
                     "energy_keV", "semiangle_mrad", "defocus_A")
"""The attributes every 4D-STEM file holds (pairs are (y, x))."""
FOURD_TRUTH_KEYS = ("x", "y", "element", "kind", "light")


@dataclass
class FourDSTEM:
    """One 4D-STEM scan and its calibration.

    Attributes
    ----------
    data : ndarray of float32, shape (ny_scan, nx_scan, ky, kx)
        Diffraction intensities (counts where simulated with a dose).
    scan_sampling_A, scan_origin_A : (float, float)
        Scan step and position of scan pixel (0, 0), (y, x), Å.
    reciprocal_sampling_per_A, angular_sampling_mrad : (float, float)
        Detector pixel size (y, x), 1/Å and mrad.
    energy_keV, semiangle_mrad, defocus_A : float
        Beam energy, convergence semi-angle, defocus (abTEM's sign).
    clean : ndarray of float32, optional
        Expected intensities (no noise), same shape as ``data``.
    truth : dict of str to ndarray, optional
        ``x``, ``y`` (scan pixels, x = column index of the scan grid), ``element``,
        ``kind``, ``light`` (bool) per column, plus any extras.
    attrs : dict
        Provenance (``material``, ``dose_e_per_A2``, ``seed``, ``simulator`` ...).
    """

    data: np.ndarray
    scan_sampling_A: tuple
    scan_origin_A: tuple
    reciprocal_sampling_per_A: tuple
    angular_sampling_mrad: tuple
    energy_keV: float
    semiangle_mrad: float
    defocus_A: float = 0.0
    clean: np.ndarray | None = None
    truth: dict | None = None
    attrs: dict = field(default_factory=dict)
    name: str = "4dstem"

    def __post_init__(self):
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim != 4:
            raise AtomlocInputError(f"{self.name}: data must be [ny_scan, nx_scan, ky, kx], got shape "
                                    f"{self.data.shape}")
        for key in ("scan_sampling_A", "scan_origin_A", "reciprocal_sampling_per_A", "angular_sampling_mrad"):
            value = np.broadcast_to(np.asarray(getattr(self, key), dtype=np.float64), (2,))
            if not np.all(np.isfinite(value)):
                raise AtomlocInputError(f"{self.name}: {key} must be finite (got {getattr(self, key)!r})")
            setattr(self, key, (float(value[0]), float(value[1])))
        for key in ("scan_sampling_A", "reciprocal_sampling_per_A", "angular_sampling_mrad"):
            if min(getattr(self, key)) <= 0:
                raise AtomlocInputError(f"{self.name}: {key} must be > 0 (got {getattr(self, key)})")
        for key in ("energy_keV", "semiangle_mrad"):
            if not float(getattr(self, key)) > 0:
                raise AtomlocInputError(f"{self.name}: {key} must be > 0 (got {getattr(self, key)!r})")
        if self.clean is not None:
            self.clean = np.asarray(self.clean, dtype=np.float32)
            if self.clean.shape != self.data.shape:
                raise AtomlocInputError(f"{self.name}: clean has shape {self.clean.shape}, data {self.data.shape}")

    @property
    def scan_shape(self) -> tuple[int, int]:
        return tuple(self.data.shape[:2])

    @property
    def detector_shape(self) -> tuple[int, int]:
        return tuple(self.data.shape[2:])

    def truth_xy(self, light: bool | None = None) -> np.ndarray:
        """True column positions (x, y) in scan pixels, shape (m, 2); only the light (True) or heavy (False) ones
        if ``light`` is given."""
        if self.truth is None:
            raise AtomlocInputError(f"{self.name}: no truth")
        keep = np.ones(len(self.truth["x"]), bool) if light is None else np.asarray(self.truth["light"]) == light
        return np.column_stack([self.truth["x"][keep], self.truth["y"][keep]]).astype(np.float64)

    def calibration(self) -> dict:
        """The keyword arguments of :func:`atomloc.ptycho.reconstruct_ptycho` that the scan fixes."""
        return {"scan_sampling_A": self.scan_sampling_A, "scan_origin_A": self.scan_origin_A,
                "reciprocal_sampling_per_A": self.reciprocal_sampling_per_A, "energy_keV": float(self.energy_keV),
                "semiangle_mrad": float(self.semiangle_mrad), "defocus_A": float(self.defocus_A)}


def write_4dstem(path: str | os.PathLike, scan: FourDSTEM, *, compression: str | None = None,
                 include_clean: bool = True) -> None:
    """Write a :class:`FourDSTEM` to HDF5 atomically and byte-reproducibly.

    Layout: dataset ``data`` float32 [ny, nx, ky, kx] chunked one scan row per chunk;
    ``clean`` likewise (where known and ``include_clean``); file attributes
    :data:`CALIBRATION_ATTRS` then ``scan.attrs``; group ``truth``.

    Parameters
    ----------
    path : path-like
    scan : FourDSTEM
    compression : str, optional
        HDF5 filter of ``data`` and ``clean`` (e.g. ``"gzip"``).
    include_clean : bool
        Store ``clean`` too.
    """
    import h5py

    chunks = (1, *scan.data.shape[1:])
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            f.create_dataset("data", data=scan.data, chunks=chunks, compression=compression, track_times=False)
            if include_clean and scan.clean is not None:
                f.create_dataset("clean", data=scan.clean, chunks=chunks, compression=compression, track_times=False)
            for key in CALIBRATION_ATTRS:
                f.attrs[key] = np.asarray(getattr(scan, key), dtype=np.float64)
            for key, value in scan.attrs.items():
                if key in CALIBRATION_ATTRS:
                    continue
                f.attrs[key] = value
            if scan.truth is not None:
                g = f.create_group("truth", track_order=False)
                for key, value in scan.truth.items():
                    arr = np.asarray(value)
                    g.create_dataset(key, data=arr.astype("S") if arr.dtype.kind in ("U", "O") else arr,
                                     track_times=False)


def read_4dstem(path: str | os.PathLike, *, load_clean: bool = False, name: str | None = None) -> FourDSTEM:
    """Read a scan written by :func:`write_4dstem`.

    Parameters
    ----------
    path : path-like
    load_clean : bool
        Also read ``clean`` (where stored).
    name : str, optional
        The scan's name (default: the file's stem).

    Returns
    -------
    FourDSTEM

    Raises
    ------
    AtomlocInputError
        Naming the file: missing, not HDF5, no 4-D ``data``, a calibration
        attribute missing or not positive, NaN in the data, incomplete truth.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise AtomlocInputError(f"{path}: 4D-STEM file not found")
    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        raise AtomlocInputError(f"{path}: cannot read 4D-STEM file ({type(exc).__name__}: {exc})") from exc
    with f:
        if "data" not in f or f["data"].ndim != 4:
            raise AtomlocInputError(f"{path}: no [ny_scan, nx_scan, ky, kx] 'data' dataset")
        missing = [k for k in CALIBRATION_ATTRS if k not in f.attrs]
        if missing:
            raise AtomlocInputError(f"{path}: calibration attributes missing: {', '.join(missing)}")
        try:
            data = f["data"][()]
            clean = f["clean"][()] if load_clean and "clean" in f else None
            calib = {k: _attr(f.attrs[k]) for k in CALIBRATION_ATTRS}
            attrs = {k: _attr(v) for k, v in f.attrs.items() if k not in CALIBRATION_ATTRS}
            truth = None
            if "truth" in f:
                truth = {k: _decode(v[()]) for k, v in f["truth"].items()}
        except Exception as exc:  # a corrupt dataset surfaces only when read
            raise AtomlocInputError(f"{path}: cannot read 4D-STEM file ({type(exc).__name__}: {exc})") from exc
    if not np.all(np.isfinite(data)):
        raise AtomlocInputError(f"{path}: 'data' contains NaN or infinite values")
    if truth is not None:
        missing = [k for k in FOURD_TRUTH_KEYS if k not in truth]
        if missing:
            raise AtomlocInputError(f"{path}: truth lacks {missing}")
        truth["light"] = np.asarray(truth["light"], dtype=bool)
    try:
        return FourDSTEM(data=data, clean=clean, truth=truth, attrs=attrs, name=path.stem if name is None else name,
                         **calib)
    except AtomlocInputError as exc:
        raise AtomlocInputError(f"{path}: {exc}") from None


def _decode(arr: np.ndarray) -> np.ndarray:
    return arr.astype(str) if arr.dtype.kind == "S" else arr


def _attr(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return tuple(value.tolist()) if value.ndim == 1 else value
    if isinstance(value, np.generic):
        return value.item()
    return value
