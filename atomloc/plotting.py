"""Figures: detections over an image."""

from __future__ import annotations

import os

import numpy as np

from atomloc.io import atomic_path


def plot_detections(image: np.ndarray, pred_xy: np.ndarray, path: str | os.PathLike, ref_xy: np.ndarray | None = None,
                    title: str = "", ref_label: str = "reference", dpi: int = 150) -> None:
    """Save an overlay of predicted (and reference) positions on ``image``.

    Positions are (x, y) in pixels with pixel centres at integers, drawn with
    ``imshow``'s default extent so that markers sit on the pixel centres.
    The format follows the suffix of ``path`` (PNG, PDF, SVG).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6 * image.shape[0] / image.shape[1]))
    ax.imshow(image, cmap="gray", interpolation="nearest")
    if ref_xy is not None and len(ref_xy):
        ax.plot(ref_xy[:, 0], ref_xy[:, 1], "o", ms=5, mfc="none", mec="tab:cyan", mew=0.8, label=ref_label)
    if len(pred_xy):
        ax.plot(pred_xy[:, 0], pred_xy[:, 1], "+", ms=5, color="tab:red", mew=0.8, label="detected")
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # drop creation dates / software versions so that equal inputs give equal bytes
        metadata = {".png": {"Software": None}, ".pdf": {"CreationDate": None}}.get(tmp.suffix.lower())
        fig.savefig(tmp, dpi=dpi, metadata=metadata)
    plt.close(fig)
