"""Training data of the learned locators, from two sources selectable per model:

* the synthetic library (:mod:`atomloc.simulate.library`, written by
  :func:`atomloc.io.training.write_library`), which carries its own label maps;
* labelled series (:func:`atomloc.io.training.write_training_pairs`): the study's main
  route, frames of "real" series labelled from a reference frame.  Frames are
  cut into ``crop_px`` tiles; the maps are drawn from the label positions with
  the same recipe as the library's (:func:`atomloc.simulate.library.peak_map`).

:func:`split_indices` holds images out for validation and repeats the series tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from atomloc.core.errors import AtomlocInputError
from atomloc.core.geometry import nearest_neighbour_spacing
from atomloc.core.optics import FWHM_PER_SIGMA
from atomloc.learn.spec import RESTORE_TARGETS, TrainSpec
from atomloc.locate.nets import target_shift
from atomloc.locate.nets.models import input_scaling, normalise_input
from atomloc.simulate.library import peak_map


@dataclass
class TrainingSet:
    """Images (n, H, W) float32 (normalised), target maps (n, H, W), spacing (n,) px, positions list,
    source per image; :meth:`noise_levels` for a ``noise_channel`` restorer."""

    images: np.ndarray
    targets: np.ndarray
    spacing_px: np.ndarray
    positions: list
    source: np.ndarray

    def noise_levels(self) -> np.ndarray:
        """Each image's :func:`atomloc.locate.nets.models.noise_level` (n,) float32 (the images are
        normalised already; the level is that of the raw image)."""
        from atomloc.locate.nets.models import noise_level

        return np.array([noise_level(im) for im in self.images], dtype=np.float32)

    def __len__(self):
        return len(self.images)

    @staticmethod
    def concat(parts: list["TrainingSet"]) -> "TrainingSet":
        parts = [p for p in parts if len(p)]
        if not parts:
            raise AtomlocInputError("training: no training images")
        shapes = {p.images.shape[1:] for p in parts}
        if len(shapes) > 1:
            raise AtomlocInputError(f"training: image sizes differ between sources {sorted(shapes)}; "
                                    "set library.shape_px equal to the training crop_px")
        return TrainingSet(np.concatenate([p.images for p in parts]), np.concatenate([p.targets for p in parts]),
                           np.concatenate([p.spacing_px for p in parts]), sum((p.positions for p in parts), []),
                           np.concatenate([p.source for p in parts]))


def library_set(library: dict, spec: TrainSpec) -> TrainingSet:
    """Training images from a library dict (:func:`atomloc.io.read_library`).

    A restoration target (:data:`atomloc.learn.spec.RESTORE_TARGETS`) is scaled
    like its input image (:func:`atomloc.locate.nets.models.input_scaling`), so
    the network learns it in the units it sees, and inference maps its output
    back to the image's; a background-free target is not shifted by the input's
    low percentile (:func:`atomloc.locate.nets.target_shift`).
    """
    images = np.stack([normalise_input(im) for im in library["images"]])
    if spec.target in RESTORE_TARGETS:
        if spec.target not in library:
            raise AtomlocInputError(f"training: the library has no {spec.target!r} target; render it with "
                                    "library.restoration_labels: true")
        scaling = [input_scaling(im) for im in library["images"]]
        targets = np.stack([(t - target_shift(spec.target, lo)) / scale
                            for t, (lo, scale) in zip(library[spec.target], scaling)])
        return TrainingSet(images, targets.astype(np.float32), np.asarray(library["spacing_px"], dtype=np.float32),
                           list(library["positions"]), np.full(len(images), "library"))
    return TrainingSet(images, np.asarray(library[spec.target], dtype=np.float32),
                       np.asarray(library["spacing_px"], dtype=np.float32), list(library["positions"]),
                       np.full(len(images), "library"))


def series_set(frames: np.ndarray, positions: list, pixel_size_pm: float, spec: TrainSpec,
               name: str = "series") -> TrainingSet:
    """Training tiles of ``crop_px`` cut from labelled frames, with maps drawn from the label positions.

    The spacing of a frame is the mean nearest-neighbour distance of its labels;
    tiles that would hold fewer than 2 labels are skipped.
    """
    c = spec.crop_px
    if spec.target in RESTORE_TARGETS:
        raise AtomlocInputError(f"{name}: labelled series carry no restoration target ({spec.target}); "
                                "train restorers on the library")
    if spec.target == "circular_mask":
        raise AtomlocInputError(f"{name}: labelled series give no circular mask (probe unknown); "
                                "train on the library or use target confidence / gaussian_mask")
    images, targets, spacing, pos = [], [], [], []
    for frame, xy in zip(frames, positions):
        h, w = frame.shape
        if h < c or w < c:
            raise AtomlocInputError(f"{name}: frames of {h}x{w} px are smaller than crop_px = {c}")
        s = nearest_neighbour_spacing(xy)
        sigma = spec.confidence_sigma_frac * s if spec.target == "confidence" else \
            spec.gaussian_mask_fwhm_A * 100 / pixel_size_pm / FWHM_PER_SIGMA
        full = peak_map((h, w), xy, sigma).astype(np.float32)
        norm = normalise_input(frame)
        for y0 in range(0, h - c + 1, c):
            for x0 in range(0, w - c + 1, c):
                inside = (xy[:, 0] >= x0 - 0.5) & (xy[:, 0] < x0 + c - 0.5) & (xy[:, 1] >= y0 - 0.5) & \
                         (xy[:, 1] < y0 + c - 0.5)
                if inside.sum() < 2:
                    continue
                images.append(normalise_input(norm[y0:y0 + c, x0:x0 + c]))
                targets.append(full[y0:y0 + c, x0:x0 + c])
                spacing.append(s)
                pos.append(xy[inside] - [x0, y0])
    if not images:
        return TrainingSet(np.zeros((0, c, c), np.float32), np.zeros((0, c, c), np.float32), np.zeros(0, np.float32),
                           [], np.zeros(0, dtype="<U7"))
    return TrainingSet(np.stack(images), np.stack(targets), np.asarray(spacing, np.float32), pos,
                       np.full(len(images), "series"))


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.randint(0, 2, (1,), generator=gen))
    x, y = torch.rot90(x, k, dims=(2, 3)), torch.rot90(y, k, dims=(2, 3))
    if flip:
        x, y = torch.flip(x, dims=(3,)), torch.flip(y, dims=(3,))
    return x, y


def split_indices(source: np.ndarray, val_frac: float, series_repeat: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Validation and training indices of a training set.

    A random ``val_frac`` of the images is held out for validation; each
    training image whose ``source`` is ``"series"`` is listed
    ``series_repeat`` times, the others once.

    Returns
    -------
    val_idx : ndarray
        Sorted, no repeats.
    train_idx : ndarray
        Indices of one epoch, before shuffling.
    """
    order = rng.permutation(len(source))
    n_val = int(round(val_frac * len(source)))
    val_idx, train_idx = np.sort(order[:n_val]), order[n_val:]
    series_idx = train_idx[np.asarray(source)[train_idx] == "series"]
    return val_idx, np.concatenate([train_idx] + [series_idx] * (int(series_repeat) - 1))


def training_data_from_files(spec: TrainSpec, library_path: str | None = None,
                             pair_paths=()) -> tuple[TrainingSet, dict, dict]:
    """The training set of a learned locator read from its files, with what its sidecar records.

    Parameters
    ----------
    spec : TrainSpec
    library_path : str, optional
        A synthetic library (:func:`atomloc.io.training.read_library`).
    pair_paths : sequence of str
        Training pairs of series (:func:`atomloc.io.training.read_training_pairs`).

    Returns
    -------
    data : TrainingSet
        :func:`library_set` and :func:`series_set` of every file, concatenated.
    sources : dict
        ``library`` -> its path; ``series`` -> {path: label source}.
    extra : dict
        ``library`` -> the library's settings (inference reads the trained
        spacing band from them, :func:`atomloc.locate.learned.trained_band`).
    """
    import json

    from atomloc.io.training import read_library, read_training_pairs

    parts, sources, extra = [], {}, {}
    if library_path is not None:
        library = read_library(library_path)
        parts.append(library_set(library, spec))
        sources["library"] = library_path
        extra["library"] = json.loads(library["attrs"]["spec"])
    for path in pair_paths:
        frames, positions, attrs = read_training_pairs(path)
        parts.append(series_set(frames, positions, attrs["pixel_size_pm"], spec, name=path))
        sources.setdefault("series", {})[path] = attrs.get("label_source", "")
    return TrainingSet.concat(parts), sources, extra
