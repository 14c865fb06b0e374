"""Reading single images and microscope files (rosettasciio) as grey float64 arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from atomloc.core.errors import AtomlocInputError
from atomloc.core.image import check_pixel_dtype, validate_image

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".bmp", ".npy", ".dm3", ".dm4", ".emd", ".ser")


# Microscope formats read through rosettasciio, which keeps the calibration.
MICROSCOPE_READERS = {".dm3": "rsciio.digitalmicrograph", ".dm4": "rsciio.digitalmicrograph", ".emd": "rsciio.emd",
                      ".ser": "rsciio.tia", ".tif": "rsciio.tiff", ".tiff": "rsciio.tiff"}


_PM_PER_UNIT = {"pm": 1.0, "Å": 100.0, "A": 100.0, "angstrom": 100.0, "nm": 1000.0, "µm": 1e6, "um": 1e6}


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
    """Read one 2-D image and return it as a float64 grey array.

    Supported: ``.tif``/``.tiff`` (tifffile), ``.png``/``.bmp`` (Pillow; 8- or
    16-bit, grey, RGB or RGBA converted to grey), ``.npy`` (no pickles) and the
    microscope formats ``.dm3``, ``.dm4``, ``.emd``, ``.ser`` (rosettasciio,
    :func:`read_microscope_file`); a file holding a stack (:func:`read_stack`)
    needs ``frame``.

    Parameters
    ----------
    path : path-like
        Image file.
    frame : int, optional
        Frame of a stack, counted from 0 (required there).

    Returns
    -------
    ndarray of float64, shape (H, W)
        Pixel values as stored (no rescaling).

    Raises
    ------
    AtomlocInputError
        If the file is missing, has an unsupported suffix, cannot be decoded
        (truncated or corrupt), holds a stack and no (or an out-of-range) frame
        is given, or the image fails :func:`validate_image`.
    """
    frames = read_stack(path)
    name = str(path)
    if frame is None and len(frames) > 1:
        raise AtomlocInputError(f"{name}: holds {len(frames)} frames; choose one with --frame K (0 to "
                                f"{len(frames) - 1}) or locate all with --frame all")
    k = 0 if frame is None else frame
    if not 0 <= k < len(frames):
        raise AtomlocInputError(f"{name}: frame {k} requested but the file holds {len(frames)} (0 to "
                                f"{len(frames) - 1})")
    return frames[k]


def read_stack(path: str | os.PathLike) -> np.ndarray:
    """Read every frame of an image file as float64 grey images.

    A microscope file (:func:`read_microscope_file`), a 3-D ``.tif``/``.npy``
    whose last axis is not a colour axis (1, 3 or 4 long), or a 4-D one of RGB
    frames is a stack; any other file is one frame.

    Returns
    -------
    ndarray of float64, shape (n, H, W)
        Every frame checked by :func:`validate_image` (n = 1 for a single image).

    Raises
    ------
    AtomlocInputError
        As :func:`read_image`, naming the file (and the frame).
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise AtomlocInputError(f"{name}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".dm3", ".dm4", ".emd", ".ser"):
        frames, _, _ = read_microscope_file(path)
        return _checked_stack([f.astype(np.float64) for f in frames], name)
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
    check_pixel_dtype(arr, name)  # before RGB -> grey, which would drop an imaginary part
    if arr.ndim > 3 and arr.shape[-1] not in (3, 4):
        arr = np.squeeze(arr)
    if arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4)):
        return _checked_stack([_to_grey(a, f"{name}[frame {k}]") for k, a in enumerate(arr)], name)
    return _checked_stack([_to_grey(arr, name)], name)


def _checked_stack(frames: list, name: str) -> np.ndarray:
    """The frames as one (n, H, W) float64 array, each checked by :func:`validate_image`."""
    if len(frames) == 1:
        return validate_image(frames[0], name)[None]
    return np.stack([validate_image(f, f"{name}[frame {k}]") for k, f in enumerate(frames)])


IMAGE_OUTPUT_SUFFIXES = (".tif", ".tiff", ".npy")


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a grey image as float32, atomically: ``.tif``/``.tiff`` (tifffile) or ``.npy``.

    Parameters
    ----------
    path : path-like
        The output file; its suffix picks the format (:data:`IMAGE_OUTPUT_SUFFIXES`).
    image : ndarray, shape (H, W)
        Any units (written as float32; rows = y, columns = x).

    Raises
    ------
    AtomlocInputError
        If the suffix is not one of :data:`IMAGE_OUTPUT_SUFFIXES`.
    """
    from atomloc.io.files import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_OUTPUT_SUFFIXES:
        raise AtomlocInputError(f"{path}: cannot write an image as {suffix or 'no suffix'}; use one of "
                                f"{', '.join(IMAGE_OUTPUT_SUFFIXES)} (float32)")
    data = np.asarray(image, dtype=np.float32)
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, data)
        else:
            import tifffile

            tifffile.imwrite(tmp, data)
