"""Training of the learned locators.

Training data come from two sources, selectable per model:

* the synthetic library (:mod:`atomloc.library`, written by
  :func:`atomloc.io.write_library`), which carries its own label maps;
* labelled series (:func:`atomloc.io.write_training_pairs`): the study's main
  route, frames of "real" series labelled from a reference frame.  Frames are
  cut into ``crop_px`` tiles; the maps are drawn from the label positions with
  the same recipe as the library's (:func:`atomloc.library.peak_map`).

One epoch is one pass over the training images (tiles from labelled series
``series_repeat`` times) in a seeded random order with random flips and
90-degree rotations; the learning rate drops by
``lr_gamma`` every ``lr_step_epochs``; the checkpoint with the best validation
F1 (ties: lower validation loss) is kept.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from atomloc.errors import AtomlocInputError
from atomloc.library import FWHM_PER_SIGMA, peak_map
from atomloc.metrics import nearest_neighbour_spacing, score_detections
from atomloc.nets.heads import nms_head, otsu_centroid_head
from atomloc.nets.spec import TrainSpec
from atomloc.nets.models import (atomid_loss, build_model, chi_square_loss, normalise_input,
                                 pick_device, predict)

@dataclass
class TrainingSet:
    """Images (n, H, W) float32 (normalised), target maps (n, H, W), spacing (n,) px, positions list."""

    images: np.ndarray
    targets: np.ndarray
    spacing_px: np.ndarray
    positions: list
    source: np.ndarray

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
    """Training images from a library dict (:func:`atomloc.io.read_library`)."""
    images = np.stack([normalise_input(im) for im in library["images"]])
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


def _loss(model, spec, x, y, s):
    if spec.architecture == "atomid":
        conf, sp = model(x)
        return atomid_loss(conf, sp, y, s, spec.lambda_map)
    return chi_square_loss(model(x), y)


def detect(maps: np.ndarray, spacing_px, spec: TrainSpec) -> list[pd.DataFrame]:
    """The architecture's own head on each map (NMS for atomid, Otsu + centroid for atomsegnet)."""
    if spec.architecture == "atomid":
        return [nms_head(m, float(s), spec.min_confidence) for m, s in zip(maps, spacing_px)]
    return [otsu_centroid_head(m) for m in maps]


def validation_f1(model, data: TrainingSet, spec: TrainSpec) -> float:
    """Mean F1 of the model's detections against the label positions of ``data``."""
    maps, spacing = predict(model, data.images, batch_size=spec.batch_size)
    found = detect(maps, spacing if spacing is not None else data.spacing_px, spec)
    f1 = [score_detections(d[["x", "y"]].to_numpy(), ref, m.shape).f1
          for d, ref, m in zip(found, data.positions, maps) if len(ref) >= 2]
    return float(np.mean(f1)) if f1 else float("nan")


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


def train_model(data: TrainingSet, spec: TrainSpec, device: str | None = None, progress: bool = False,
                log=None) -> tuple[torch.nn.Module, pd.DataFrame, dict]:
    """Train a model on ``data``; return the best model, the per-epoch history and a summary.

    The history has one row per epoch: ``epoch, lr, train_loss, val_loss,
    val_f1, seconds``.  Training is seeded by ``spec.seed`` (weights, split,
    order, augmentation).
    """
    from tqdm import tqdm

    spec.check()
    if len(data) < 2:
        raise AtomlocInputError(f"training: need at least 2 images, got {len(data)}")
    dev = pick_device(device)
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    val_idx, train_idx = split_indices(data.source, spec.val_frac, spec.series_repeat, rng)
    n_val, n_train = len(val_idx), len(np.unique(train_idx))
    val = TrainingSet(data.images[val_idx], data.targets[val_idx], data.spacing_px[val_idx],
                      [data.positions[i] for i in val_idx], data.source[val_idx])
    model = build_model(spec.architecture, spec.base_channels, spec.depth).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=spec.lr_step_epochs, gamma=spec.lr_gamma)
    x_all = torch.from_numpy(data.images).unsqueeze(1)
    y_all = torch.from_numpy(data.targets).unsqueeze(1)
    s_all = torch.from_numpy(data.spacing_px)
    rows, best, best_state = [], None, None
    for epoch in range(1, spec.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = train_idx[rng.permutation(len(train_idx))]
        total = 0.0
        batches = range(0, len(perm), spec.batch_size)
        for b in tqdm(batches, desc=f"epoch {epoch}/{spec.epochs}", disable=not progress, leave=False):
            idx = torch.from_numpy(perm[b:b + spec.batch_size])
            if len(idx) < 2:  # batch norm needs two images
                continue
            x, y = _augment(x_all[idx], y_all[idx], gen)
            loss = _loss(model, spec, x.to(dev), y.to(dev), s_all[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(_loss(model, spec, torch.from_numpy(val.images).unsqueeze(1).to(dev),
                                   torch.from_numpy(val.targets).unsqueeze(1).to(dev),
                                   torch.from_numpy(val.spacing_px).to(dev))) if len(val) else float("nan")
        val_f1 = validation_f1(model, val, spec) if len(val) else float("nan")
        rows.append({"epoch": epoch, "lr": lr, "train_loss": total / max(len(perm), 1), "val_loss": val_loss,
                     "val_f1": val_f1, "seconds": time.perf_counter() - t0})
        if log is not None:
            log.info("epoch %d: lr %.2g, train loss %.4g, val loss %.4g, val F1 %.4f", epoch, lr,
                     rows[-1]["train_loss"], val_loss, val_f1)
        key = (np.nan_to_num(val_f1, nan=-1.0), -np.nan_to_num(val_loss, nan=np.inf))
        if best is None or key > best:
            best = key
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_epoch = epoch
    model.load_state_dict(best_state)
    model.eval()
    history = pd.DataFrame(rows)
    summary = {"best_epoch": best_epoch, "val_f1": rows[best_epoch - 1]["val_f1"],
               "val_loss": rows[best_epoch - 1]["val_loss"], "n_train": int(n_train), "n_val": int(n_val),
               "sources": {str(k): int(v) for k, v in zip(*np.unique(data.source, return_counts=True))},
               "device": str(dev), "spec": asdict(spec)}
    return model, history, summary
