"""The training loop of the learned locators (data: :mod:`atomloc.learn.data`).

One epoch is one pass over the training images (tiles from labelled series
``series_repeat`` times) in a seeded random order with random flips and
90-degree rotations; the learning rate drops by ``lr_gamma`` every
``lr_step_epochs``; the checkpoint with the best validation F1 (ties: lower
validation loss; a restorer, which detects nothing: the lowest validation
loss) is kept.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from atomloc.analysis.metrics import score_detections
from atomloc.core.errors import AtomlocInputError
from atomloc.learn.data import TrainingSet, _augment, split_indices
from atomloc.learn.spec import TrainSpec
from atomloc.locate.nets import ATOMID, RESTORER
from atomloc.locate.nets.heads import nms_head, otsu_centroid_head
from atomloc.locate.nets.models import (
    atomid_loss,
    build_model,
    chi_square_loss,
    pick_device,
    predict,
    with_noise_channel,
)

RANGE_FLOOR = 0.1
"""Floor of a target's peak-to-peak range in ``range_mse`` (normalised units; an image
without columns would otherwise weigh without bound)."""


PSNR_EPS = 1e-10
"""Added to each image's relative squared error in the ``psnr`` loss (caps its PSNR at 100 dB)."""


def restorer_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """A restorer's loss over a batch (n, 1, H, W) (:attr:`TrainSpec.restorer_loss`).

    ``mse``: the mean squared error; ``range_mse``: the mean over the images of
    each one's mean squared error over ``max(ptp(target), RANGE_FLOOR)**2``;
    ``psnr``: minus the mean over the images of their PSNR in dB with that range
    (``-10 log10(range**2 / mse)``; :func:`restoration_psnr` scores the same but with
    the unfloored range, and on another library in the shipped sidecars).
    """
    err = ((pred - target) ** 2).flatten(1).mean(dim=1)
    if kind == "mse":
        return err.mean()
    flat = target.flatten(1)
    span = torch.clamp(flat.amax(dim=1) - flat.amin(dim=1), min=RANGE_FLOOR)
    if kind == "psnr":
        return (10.0 * torch.log10(err / span ** 2 + PSNR_EPS)).mean()
    return (err / span ** 2).mean()


def _loss(model, spec, x, y, s):
    if spec.architecture == ATOMID:
        conf, sp = model(x)
        return atomid_loss(conf, sp, y, s, spec.lambda_map)
    if spec.architecture == RESTORER:
        return restorer_loss(model(x), y, spec.restorer_loss)
    return chi_square_loss(model(x), y)


def detect(maps: np.ndarray, spacing_px, spec: TrainSpec) -> list[pd.DataFrame]:
    """The architecture's own head on each map (NMS for atomid, Otsu + centroid for atomsegnet)."""
    if spec.architecture == ATOMID:
        return [nms_head(m, float(s), spec.min_confidence) for m, s in zip(maps, spacing_px)]
    return [otsu_centroid_head(m) for m in maps]


def validation_f1(model, data: TrainingSet, spec: TrainSpec) -> float:
    """Mean F1 of the model's detections against the label positions of ``data`` (NaN for a restorer)."""
    if spec.architecture == RESTORER:
        return float("nan")
    maps, spacing = predict(model, data.images, batch_size=spec.batch_size)
    found = detect(maps, spacing if spacing is not None else data.spacing_px, spec)
    f1 = [score_detections(d[["x", "y"]].to_numpy(), ref, m.shape).f1
          for d, ref, m in zip(found, data.positions, maps) if len(ref) >= 2]
    return float(np.mean(f1)) if f1 else float("nan")


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
    model = build_model(spec.architecture, spec.base_channels, spec.depth, noise_channel=spec.noise_channel,
                        gated=spec.gated).to(dev)
    levels = torch.from_numpy(data.noise_levels()) if spec.noise_channel else None
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
            x = with_noise_channel(x, None if levels is None else levels[idx])
            loss = _loss(model, spec, x.to(dev), y.to(dev), s_all[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        model.eval()
        with torch.no_grad():
            val_x = with_noise_channel(torch.from_numpy(val.images).unsqueeze(1),
                                       None if levels is None else levels[torch.from_numpy(val_idx)])
            val_loss = float(_loss(model, spec, val_x.to(dev),
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


def calibrate_operating_point(model, data: TrainingSet, spec: TrainSpec,
                              grid: np.ndarray | None = None) -> dict:
    """Choose the detection threshold on validation data: the one with the highest mean F1.

    For ``atomid`` the NMS head's ``min_confidence``, for ``atomsegnet`` the
    segmentation threshold (Otsu's per-image threshold is scored alongside as
    ``otsu_f1``).  Images are scored at their own scale, positions against
    their labels (:func:`atomloc.analysis.metrics.score_detections`); ties go
    to the higher threshold (fewer detections on noise).  Never give test
    frames here.  The images are not resampled to a model's inference spacing
    and the noise gate of :mod:`atomloc.locate.learned` is not applied: the
    threshold is the network's own operating point, which inference then gates.

    Returns
    -------
    dict
        ``{"min_confidence" | "threshold": t, "val_f1": F1 at t, "grid": [...], "f1": [...]}``
        (+ ``otsu_f1`` for atomsegnet), floats.
    """
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2) if grid is None else np.asarray(grid, dtype=np.float64)
    maps, spacing = predict(model, data.images, batch_size=spec.batch_size)
    keep = [k for k, ref in enumerate(data.positions) if len(ref) >= 2]

    def mean_f1(found):
        return float(np.mean([score_detections(found[k][["x", "y"]].to_numpy(), data.positions[k],
                                               maps[k].shape).f1 for k in keep]))

    if spec.architecture == ATOMID:
        f1 = [mean_f1([nms_head(m, float(s), float(t)) for m, s in zip(maps, spacing)]) for t in grid]
        key, extra = "min_confidence", {}
    else:
        f1 = [mean_f1([otsu_centroid_head(m, threshold=float(t)) for m in maps]) for t in grid]
        key, extra = "threshold", {"otsu_f1": mean_f1([otsu_centroid_head(m) for m in maps])}
    best = max(range(len(grid)), key=lambda i: (round(f1[i], 4), grid[i]))
    return {key: float(grid[best]), "val_f1": f1[best], "grid": [float(g) for g in grid],
            "f1": [round(v, 4) for v in f1], "n_images": len(keep), **extra}


def restoration_psnr(model, data: TrainingSet, batch_size: int = 8) -> dict:
    """PSNR (dB) of a restorer's output and of its input against the target, per image, on ``data``.

    Images and targets are in the network's normalised units
    (:func:`atomloc.learn.data.library_set`); the data range is each target's
    peak-to-peak (:func:`atomloc.analysis.restoration.image_quality`).

    Returns
    -------
    dict
        ``restored_db`` and ``raw_db``: the means over the images; ``n_images``.
    """
    from atomloc.analysis.restoration import image_quality

    # predict scales each image again by its own percentiles: they are already 0 and 1 here
    out, _ = predict(model, data.images, batch_size=batch_size)
    restored = [image_quality(y, t)["psnr_db"] for y, t in zip(out, data.targets)]
    raw = [image_quality(x, t)["psnr_db"] for x, t in zip(data.images, data.targets)]
    return {"restored_db": float(np.mean(restored)), "raw_db": float(np.mean(raw)), "n_images": len(restored)}
