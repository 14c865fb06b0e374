"""Reading and writing images, position tables and image series.

File contracts (see DESIGN.md):

* Positions: one CSV per image, columns ``x, y`` (pixels; ``x`` = column index,
  ``y`` = row index, centre of pixel (0, 0) at (0.0, 0.0)) and optional
  ``score, sigma, element``.
* Image series: one HDF5 file per region with ``frames`` float32 ``[n, H, W]``,
  attributes for pixel size, material, simulator and seed, per-frame arrays and a
  ``truth`` group with the true column positions where known.

Every writer writes to a temporary file beside the target and renames it into
place, so a failure never leaves a partial output behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from atomloc.errors import AtomlocInputError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".bmp", ".npy", ".dm3", ".dm4", ".emd", ".ser")
# Microscope formats read through rosettasciio, which keeps the calibration.
MICROSCOPE_READERS = {".dm3": "rsciio.digitalmicrograph", ".dm4": "rsciio.digitalmicrograph", ".emd": "rsciio.emd",
                      ".ser": "rsciio.tia", ".tif": "rsciio.tiff", ".tiff": "rsciio.tiff"}
_PM_PER_UNIT = {"pm": 1.0, "Å": 100.0, "A": 100.0, "angstrom": 100.0, "nm": 1000.0, "µm": 1e6, "um": 1e6}
POSITION_COLUMNS = ("x", "y")
CSV_FLOAT_FORMAT = "%.5f"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the body raises, so no partial output
    survives.  The suffix of ``path`` is kept so that libraries choosing a format
    from the suffix behave as for the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def validate_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``image`` is a usable 2-D grey image and return it as float64.

    Parameters
    ----------
    image : ndarray
        Candidate image.
    name : str
        File or variable name used in error messages.

    Raises
    ------
    AtomlocInputError
        If the image is not 2-D, is smaller than 8 x 8 pixels, has a non-numeric
        dtype, contains NaN or infinity, or is constant.
    """
    arr = np.asarray(image)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise AtomlocInputError(f"{name}: unsupported dtype {arr.dtype}; expected integer or float pixels")
    if arr.ndim != 2:
        raise AtomlocInputError(f"{name}: expected a 2-D grey image, got shape {arr.shape}")
    if min(arr.shape) < 8:
        raise AtomlocInputError(f"{name}: image of shape {arr.shape} is too small (minimum 8 x 8 pixels)")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise AtomlocInputError(f"{name}: image contains {n_bad} NaN or infinite pixels")
    if np.ptp(arr) == 0:
        raise AtomlocInputError(f"{name}: image is constant (every pixel = {arr.flat[0]:g}); nothing to locate")
    return arr


def _to_grey(arr: np.ndarray, name: str) -> np.ndarray:
    """Convert an (H, W), (H, W, 3) or (H, W, 4) array to (H, W)."""
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3].astype(np.float64)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0]
        # ITU-R BT.709 luminance, as skimage.color.rgb2gray
        return rgb @ np.array([0.2125, 0.7154, 0.0721])
    if arr.ndim == 3 and arr.shape[-1] == 1:
        return arr[..., 0]
    if arr.ndim == 2:
        return arr
    raise AtomlocInputError(f"{name}: expected a grey or RGB image, got array of shape {arr.shape}")


def _pixel_size_pm(axes) -> float | None:
    """Pixel size in pm from the two signal axes of a rosettasciio signal (None if uncalibrated)."""
    sizes = []
    for ax in axes:
        unit = str(ax.get("units") or "").strip()
        if unit not in _PM_PER_UNIT or not float(ax.get("scale", 0.0)) > 0:
            return None
        sizes.append(float(ax["scale"]) * _PM_PER_UNIT[unit])
    if not np.isclose(sizes[0], sizes[1], rtol=1e-3):
        return None  # non-square pixels: not a calibration we can use
    return float(np.mean(sizes))


def read_microscope_file(path: str | os.PathLike) -> tuple[np.ndarray, float | None, dict]:
    """Read the image (or image stack) of a microscope file through rosettasciio.

    Supported: Digital Micrograph ``.dm3``/``.dm4``, ``.emd`` (Velox and
    Berkeley), TIA ``.ser`` and ``.tif``/``.tiff``.  Where the file holds
    several signals (e.g. a Velox EMD with HAADF, DF and spectra), the image
    titled HAADF is taken, else the first image.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    frames : ndarray of float32, shape (n, H, W)
        One frame per image of a stack (n = 1 for a single image).
    pixel_size_pm : float or None
        From the file's calibration; None where it is missing or not a length.
    attrs : dict
        ``source_file`` and ``title``.

    Raises
    ------
    AtomlocInputError
        If the file is missing, of an unknown format, unreadable, or holds no
        2-D image or stack of them.
    """
    import importlib

    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise AtomlocInputError(f"{name}: file not found")
    suffix = path.suffix.lower()
    if suffix not in MICROSCOPE_READERS:
        raise AtomlocInputError(f"{name}: unsupported microscope format {suffix!r}; expected one of "
                                f"{', '.join(MICROSCOPE_READERS)}")
    try:
        signals = importlib.import_module(MICROSCOPE_READERS[suffix]).file_reader(str(path))
    except Exception as exc:  # the readers raise many different errors on corrupt files
        raise AtomlocInputError(f"{name}: cannot read ({type(exc).__name__}: {exc})") from exc
    images = []
    for sig in signals:
        axes = sig.get("axes", [])
        nav = [i for i, ax in enumerate(axes) if ax.get("navigate")]
        data = np.asarray(sig["data"])
        if data.ndim == 2 or (data.ndim == 3 and len(nav) == 1):
            images.append(sig)
    if not images:
        raise AtomlocInputError(f"{name}: holds no 2-D image or image stack")

    def title(sig):
        return str(sig.get("metadata", {}).get("General", {}).get("title", ""))

    chosen = next((sig for sig in images if "HAADF" in title(sig).upper()), images[0])
    data = np.asarray(chosen["data"])
    axes = chosen["axes"]
    if data.ndim == 3:
        k = next(i for i, ax in enumerate(axes) if ax.get("navigate"))
        data = np.moveaxis(data, k, 0)
        axes = [ax for i, ax in enumerate(axes) if i != k]
    else:
        data = data[None]
    if np.iscomplexobj(data) or data.dtype.kind not in "uif":
        raise AtomlocInputError(f"{name}: image of dtype {data.dtype} is not a real-valued intensity")
    frames = data.astype(np.float32)
    for k, frame in enumerate(frames):
        validate_image(frame, f"{name}[frame {k}]")
    return frames, _pixel_size_pm(axes), {"source_file": path.name, "title": title(chosen)}


def read_image(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """Read a single 2-D image and return it as a float64 grey array.

    Supported: ``.tif``/``.tiff`` (tifffile), ``.png``/``.bmp`` (Pillow; 8- or
    16-bit, grey, RGB or RGBA converted to grey), ``.npy`` (no pickles) and the
    microscope formats ``.dm3``, ``.dm4``, ``.emd``, ``.ser`` (rosettasciio,
    :func:`read_microscope_file`).

    Parameters
    ----------
    path : path-like
        Image file.
    frame : int, optional
        Frame of a microscope file holding an image stack (required there).

    Returns
    -------
    ndarray of float64, shape (H, W)
        Pixel values as stored (no rescaling).

    Raises
    ------
    AtomlocInputError
        If the file is missing, has an unsupported suffix, cannot be decoded
        (truncated or corrupt) or fails :func:`validate_image`.
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise AtomlocInputError(f"{name}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".dm3", ".dm4", ".emd", ".ser"):
        frames, _, _ = read_microscope_file(path)
        if frame is None and len(frames) > 1:
            raise AtomlocInputError(f"{name}: holds {len(frames)} frames; choose one (atomloc locate --frame K)")
        k = 0 if frame is None else frame
        if not 0 <= k < len(frames):
            raise AtomlocInputError(f"{name}: frame {k} requested but the file holds {len(frames)}")
        return validate_image(frames[k].astype(np.float64), name)
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        elif suffix in (".png", ".bmp"):
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                if im.mode in ("P", "PA"):
                    im = im.convert("RGBA" if "A" in im.mode else "RGB")
                elif im.mode in ("LA",):
                    im = im.convert("L")
                arr = np.array(im)
        elif suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            raise AtomlocInputError(
                f"{name}: unsupported image format {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}"
            )
    except AtomlocInputError:
        raise
    except Exception as exc:  # decoder errors differ per library; report them uniformly
        raise AtomlocInputError(f"{name}: cannot read image ({type(exc).__name__}: {exc})") from exc
    arr = np.asarray(arr)
    if arr.ndim > 3:
        arr = np.squeeze(arr)
    return validate_image(_to_grey(arr, name), name)


def import_series(paths, pixel_size_pm: float | None = None) -> dict:
    """Read a real series: one multi-frame microscope file, or several single-frame files.

    Parameters
    ----------
    paths : sequence of path-like
        The files, in frame order (a folder's files sorted by name).
    pixel_size_pm : float, optional
        Pixel size in pm; overrides the files' calibration (needed where they
        have none).

    Returns
    -------
    dict
        ``frames`` float32 [n, H, W] and ``attrs`` (``pixel_size_pm``,
        ``simulator`` = ``"none"``, ``source_files``), as
        :func:`atomloc.simulate.simulate_series` but without ``truth``.

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
            raise AtomlocInputError(f"{bad}: no length calibration in the file; set pixel_size_pm for this dataset")
        if not np.allclose(sizes, sizes[0], rtol=1e-3):
            raise AtomlocInputError(f"{paths[0]}: files of one series have different pixel sizes {sizes} pm")
        pixel_size_pm = sizes[0]
    elif not pixel_size_pm > 0:
        raise AtomlocInputError(f"pixel_size_pm must be > 0 (got {pixel_size_pm})")
    attrs = {"pixel_size_pm": float(pixel_size_pm), "simulator": "none", "material": "unknown",
             "source_files": ";".join(p.name for p in paths)}
    return {"frames": np.concatenate(stacks), "attrs": attrs}


def write_positions(path: str | os.PathLike, positions: pd.DataFrame) -> None:
    """Write a positions table (``x, y`` and optional columns) atomically as CSV.

    Floats are written with a fixed format so that equal inputs give equal bytes.
    """
    missing = [c for c in POSITION_COLUMNS if c not in positions.columns]
    if missing:
        raise ValueError(f"positions for {path} lack columns {missing}")
    with atomic_path(path) as tmp:
        positions.to_csv(tmp, index=False, float_format=CSV_FLOAT_FORMAT)


def read_positions(path: str | os.PathLike) -> pd.DataFrame:
    """Read a positions CSV written by :func:`write_positions`.

    Raises
    ------
    AtomlocInputError
        If the file is missing, unreadable, lacks ``x``/``y`` or holds NaN positions.
    """
    path = Path(path)
    if not path.is_file():
        raise AtomlocInputError(f"{path}: positions file not found")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise AtomlocInputError(f"{path}: positions file is empty (no header)") from exc
    except Exception as exc:
        raise AtomlocInputError(f"{path}: cannot read positions ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in POSITION_COLUMNS if c not in df.columns]
    if missing:
        raise AtomlocInputError(f"{path}: positions file lacks columns {missing}")
    if df[list(POSITION_COLUMNS)].isna().any().any():
        raise AtomlocInputError(f"{path}: positions file holds NaN coordinates")
    return df


def write_series(path: str | os.PathLike, frames: np.ndarray, attrs: Mapping, arrays: Mapping | None = None,
                 truth: Mapping | None = None, groups: Mapping[str, Mapping] | None = None,
                 compression: str | None = None) -> None:
    """Write an image series to HDF5 atomically and byte-reproducibly.

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file.
    frames : ndarray, shape (n, H, W)
        Frames; stored as float32 in dataset ``frames``.
    attrs : mapping
        File attributes (``pixel_size_pm``, ``material``, ``simulator``, ``seed`` ...).
    arrays : mapping of str to ndarray, optional
        Per-frame arrays stored as top-level datasets (e.g. ``dose_e_per_A2`` [n],
        ``drift_px`` [n, 2] as (x, y)).
    truth : mapping of str to ndarray, optional
        Stored in group ``truth`` (``x``, ``y`` [n, m] pixels; ``element``, ``kind`` [m]).
    groups : mapping of str to mapping, optional
        Further groups of arrays, name -> {dataset name: array}.
    compression : str, optional
        HDF5 filter for ``frames`` and the group arrays (e.g. ``"gzip"``).
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
            all_groups = {**({"truth": truth} if truth is not None else {}), **(groups or {})}
            for name, members in all_groups.items():
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


def read_series(path: str | os.PathLike) -> dict:
    """Read a series written by :func:`write_series`.

    Returns
    -------
    dict
        ``frames`` (float32 [n, H, W]), ``attrs`` (dict), every other top-level
        dataset by name, and ``truth`` (dict of arrays) when present.

    Raises
    ------
    AtomlocInputError
        If the file is missing, not HDF5, lacks ``frames``, or the frames are not
        [n, H, W] or hold NaN.
    """
    import h5py

    path = Path(path)
    with _open_series(path) as f:
        out = {"attrs": {k: _attr(v) for k, v in f.attrs.items()}}
        for key, obj in f.items():
            if isinstance(obj, h5py.Dataset):
                out[key] = _decode(obj[()])
        if "truth" in f:
            out["truth"] = {k: _decode(v[()]) for k, v in f["truth"].items()}
    frames = out["frames"]
    if not np.all(np.isfinite(frames)):
        raise AtomlocInputError(f"{path}: 'frames' contains NaN or infinite pixels")
    return out


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


LABEL_SOURCES = ("reference", "truth")


def write_training_pairs(path: str | os.PathLike, frames: np.ndarray, positions: pd.DataFrame, label_source: str,
                         attrs: Mapping | None = None) -> None:
    """Write (frame, label positions) pairs for the learned methods to HDF5, atomically.

    Layout: ``frames`` float32 [n, H, W]; group ``positions`` with ``frame``
    int32 [N], ``x``, ``y`` float64 [N] (pixels, x = column index, in that
    frame's own coordinates); attributes ``label_source`` (``reference``:
    labels of the best frame carried to every frame; ``truth``: the simulated
    truth) and ``attrs``.
    """
    if label_source not in LABEL_SOURCES:
        raise AtomlocInputError(f"{path}: label_source must be one of {LABEL_SOURCES} (got {label_source!r})")
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3:
        raise AtomlocInputError(f"{path}: frames must be [n, H, W], got shape {frames.shape}")
    missing = [c for c in ("frame", *POSITION_COLUMNS) if c not in positions.columns]
    if missing:
        raise AtomlocInputError(f"{path}: label positions lack columns {missing}")
    pos = positions.sort_values("frame", kind="stable")
    columns = {"frame": pos["frame"].to_numpy(np.int32), **{k: pos[k].to_numpy(np.float64) for k in POSITION_COLUMNS}}
    write_series(path, frames, {**(attrs or {}), "label_source": label_source}, groups={"positions": columns})


def read_training_pairs(path: str | os.PathLike) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """Read :func:`write_training_pairs` output: frames, per-frame (m, 2) (x, y) arrays, attributes."""
    path = Path(path)
    with _open_series(path) as f:
        if "positions" not in f:
            raise AtomlocInputError(f"{path}: not a training-pairs file (no 'positions' group)")
        frames = f["frames"][()]
        frame = f["positions/frame"][()]
        xy = np.column_stack([f["positions/x"][()], f["positions/y"][()]])
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
    return frames, [xy[frame == k] for k in range(len(frames))], attrs


LIBRARY_MAPS = ("confidence", "gaussian_mask", "circular_mask")
LIBRARY_ARRAYS = ("spacing_px", "pixel_size_pm", "electrons_per_px", "defocus_nm", "rotation_deg", "structure")


def write_library(path: str | os.PathLike, library: Mapping, attrs: Mapping | None = None) -> None:
    """Write a training library (:func:`atomloc.library.synthesize_library`) to HDF5, atomically.

    Layout: ``frames`` float32 [n, H, W] (the images); group ``labels`` with
    :data:`LIBRARY_MAPS` [n, H, W]; group ``positions`` with ``image`` int32
    [N], ``x``, ``y`` [N] (pixels); per-image arrays :data:`LIBRARY_ARRAYS`.
    """
    pos = library["positions"]
    index = np.concatenate([np.full(len(p), k, dtype=np.int32) for k, p in enumerate(pos)])
    xy = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in pos])
    write_series(path, library["images"], dict(attrs or {}), arrays={k: library[k] for k in LIBRARY_ARRAYS},
                 groups={"labels": {k: np.asarray(library[k], dtype=np.float32) for k in LIBRARY_MAPS},
                         "positions": {"image": index, "x": xy[:, 0], "y": xy[:, 1]}},
                 compression="gzip")


def read_library(path: str | os.PathLike) -> dict:
    """Read :func:`write_library` output into the dict of :func:`atomloc.library.synthesize_library`."""
    path = Path(path)
    with _open_series(path) as f:
        if "labels" not in f or "positions" not in f:
            raise AtomlocInputError(f"{path}: not a training library (needs groups 'labels' and 'positions')")
        out = {"images": f["frames"][()], "attrs": {k: _attr(v) for k, v in f.attrs.items()}}
        for key in LIBRARY_MAPS:
            out[key] = f[f"labels/{key}"][()]
        for key in LIBRARY_ARRAYS:
            out[key] = _decode(f[key][()])
        index = f["positions/image"][()]
        xy = np.column_stack([f["positions/x"][()], f["positions/y"][()]])
    out["positions"] = [xy[index == k] for k in range(len(out["images"]))]
    if not np.all(np.isfinite(out["images"])):
        raise AtomlocInputError(f"{path}: library images contain NaN or infinite pixels")
    return out
