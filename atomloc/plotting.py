"""Figures: detection overlays, metric curves, training curves and maps of per-column values.

Positions are (x, y) in pixels with pixel centres at integers, drawn with
``imshow``'s default extent so that markers sit on the pixel centres.  Every
figure is written to each path given (the format follows the suffix: PNG,
PDF, SVG) with creation dates and software versions dropped, so that equal
inputs give equal bytes.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from atomloc.io.files import atomic_path
from atomloc.io.series import Series


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, paths: str | os.PathLike | Sequence, dpi: int = 150) -> None:
    """Save ``fig`` to every path (atomically, without timestamps) and close it."""
    plt = _pyplot()
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        with atomic_path(path) as tmp:
            metadata = {".png": {"Software": None}, ".pdf": {"CreationDate": None}}.get(tmp.suffix.lower())
            fig.savefig(tmp, dpi=dpi, metadata=metadata)
    plt.close(fig)


def _legend(ax, **kwargs) -> None:
    """A legend only where something is labelled (an empty one warns)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _overlay(ax, image, pred_xy, ref_xy, title, ref_label):
    ax.imshow(image, cmap="gray", interpolation="nearest")
    if ref_xy is not None and len(ref_xy):
        ax.plot(ref_xy[:, 0], ref_xy[:, 1], "o", ms=4, mfc="none", mec="tab:cyan", mew=0.7, label=ref_label)
    if len(pred_xy):
        ax.plot(pred_xy[:, 0], pred_xy[:, 1], "+", ms=4, color="tab:red", mew=0.7, label="detected")
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    _legend(ax, loc="lower right", fontsize=6, framealpha=0.8)


def plot_detection_panels(panels: Sequence[dict], paths, suptitle: str = "", dpi: int = 150) -> None:
    """Side-by-side overlays; each panel is a dict with ``image, pred_xy, ref_xy, title, ref_label``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5.3), squeeze=False)
    for ax, p in zip(axes[0], panels):
        _overlay(ax, p["image"], np.asarray(p["pred_xy"]).reshape(-1, 2), p.get("ref_xy"), p.get("title", ""),
                 p.get("ref_label", "reference"))
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths, dpi)


def plot_curves(table: pd.DataFrame, x: str, y: str, group: str, paths, xlabel: str, ylabel: str,
                logx: bool = False, yerr: str | None = None, title: str = "") -> None:
    """One line (with optional error bars) per value of ``group``: ``y`` against ``x``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, g in table.sort_values(x).groupby(group, sort=True):
        ax.errorbar(g[x], g[y], yerr=None if yerr is None else g[yerr], marker="o", ms=3, lw=1, capsize=2,
                    label=str(name))
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_rmse_vs_crlb(per_image: pd.DataFrame, paths, title: str = "") -> None:
    """Per-image RMSE against the Cramér–Rao bound (pm), one colour per method, with the line RMSE = CRLB."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    rows = per_image[np.isfinite(per_image["crlb_pm"]) & np.isfinite(per_image["rmse_pm"])]
    for name, g in rows.groupby("method", sort=True):
        ax.loglog(g["crlb_pm"], g["rmse_pm"], "o", ms=3, label=name)
    if len(rows):
        lo = float(min(rows["crlb_pm"].min(), rows["rmse_pm"].min()))
        hi = float(max(rows["crlb_pm"].max(), rows["rmse_pm"].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="RMSE = CRLB")
    from matplotlib.ticker import NullFormatter

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())  # the minor labels of a short log axis overlap
    ax.set_xlabel("CRLB of a typical column (pm)")
    ax.set_ylabel("RMSE of matched columns (pm)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    _legend(ax, fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_training_curves(histories: dict, paths) -> None:
    """Training and validation loss (log scale) and validation F1 per epoch, per model."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, h in sorted(histories.items()):
        ax1.semilogy(h["epoch"], h["train_loss"], "-", label=f"{name} train")
        ax1.semilogy(h["epoch"], h["val_loss"], "--", label=f"{name} validation")
        ax2.plot(h["epoch"], h["val_f1"], "o-", ms=3, label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (each model's own)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation F1")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        _legend(ax, fontsize=7)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_point_maps(panels: Sequence[dict], paths, shape, cmap: str = "RdBu_r", vlim: float | None = None,
                    label: str = "", suptitle: str = "", symmetric: bool = True) -> None:
    """Per-column values as coloured points, one panel each (dicts with ``xy``, ``values``, ``title``).

    One colour scale for all panels: ``±vlim`` (symmetric) or ``[0, vlim]``;
    default the 99th percentile of ``|values|``.
    """
    plt = _pyplot()
    allv = np.concatenate([np.asarray(p["values"], dtype=float) for p in panels]) if panels else np.zeros(1)
    allv = allv[np.isfinite(allv)]
    if vlim is None:
        vlim = float(np.percentile(np.abs(allv), 99)) if len(allv) else 1.0
        vlim = vlim or 1.0
    n = len(panels)
    ncol = max(1, min(n, 4))
    nrow = max(1, int(np.ceil(n / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.4 * nrow + 0.4), squeeze=False)
    h, w = shape
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    sc = None
    for ax, p in zip(axes.ravel(), panels):
        xy = np.asarray(p["xy"], dtype=float).reshape(-1, 2)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=p["values"], s=6, cmap=cmap,
                        vmin=-vlim if symmetric else 0.0, vmax=vlim)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(p.get("title", ""), fontsize=8)
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.8, label=label)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    save_figure(fig, paths)


def plot_series_overview(series: Series, paths, crop_px: int = 64, title: str = "") -> None:
    """Two frames of a series, the truth over a crop of the first, and the truth-vs-noise-free-peak offsets.

    Panels: the lowest- and the highest-dose frame; a ``crop_px`` crop of the
    lowest-dose frame's centre with the true columns; the histogram of
    ``|peak_offset_px|`` over all frames and columns with its median, and
    the median over the frames within the probe's depth of field
    (:func:`atomloc.simulate.series.peak_offset_medians`); a series without truth
    gets the two frames only.
    """
    plt = _pyplot()
    frames = series.frames
    dose = series.dose_e_per_A2
    order = np.argsort(dose) if dose is not None else np.arange(len(frames))
    lo, hi = int(order[0]), int(order[-1])
    truth = series.truth
    fig, axes = plt.subplots(1, 4 if truth is not None else 2, figsize=(16 if truth is not None else 8, 4.2))
    for ax, k in zip(axes[:2], (lo, hi)):
        ax.imshow(frames[k], cmap="gray", interpolation="nearest")
        ax.set_axis_off()
        label = f", {dose[k]:.3g} e/Å²" if dose is not None else ""
        ax.set_title(f"frame {k}{label}", fontsize=8)
    if truth is not None:
        h, w = frames.shape[1:]
        c = min(crop_px, h, w)
        y0, x0 = (h - c) // 2, (w - c) // 2
        ax = axes[2]
        ax.imshow(frames[lo][y0:y0 + c, x0:x0 + c], cmap="gray", interpolation="nearest")
        x, y = truth.x[lo] - x0, truth.y[lo] - y0
        inside = (x > -0.5) & (x < c - 0.5) & (y > -0.5) & (y < c - 0.5)
        ax.plot(x[inside], y[inside], "o", ms=4, mfc="none", mec="tab:cyan", mew=0.8)
        ax.set_xlim(-0.5, c - 0.5)
        ax.set_ylim(c - 0.5, -0.5)
        ax.set_axis_off()
        ax.set_title(f"frame {lo}, centre crop {c} px, o truth", fontsize=8)
        ax = axes[3]
        if "peak_offset_px" in truth.extra:
            from atomloc.simulate.series import peak_offset_medians

            off = np.hypot(*np.moveaxis(np.asarray(truth.extra["peak_offset_px"], dtype=float), -1, 0)).ravel()
            off = off[np.isfinite(off)]
            if len(off):
                ax.hist(off, bins=np.linspace(0, max(1.0, float(np.percentile(off, 99))), 40), color="tab:blue")
                ax.axvline(np.median(off), color="k", ls="--", lw=1, label=f"median {np.median(off):.3f} px")
                if series.in_focus()[0] is not None:
                    med = peak_offset_medians(series)
                    if med["n_in_focus"]:
                        ax.axvline(med["in_focus_px"], color="tab:red", ls=":", lw=1,
                                   label=f"median {med['in_focus_px']:.3f} px, {med['n_in_focus']} frames "
                                         f"|Δf| ≤ {med['half_dof_nm']:.1f} nm")
                _legend(ax, fontsize=7)
        ax.set_xlabel("|truth − noise-free peak| (px)")
        ax.set_ylabel("columns × frames")
        ax.set_title("truth vs noise-free image peak", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)
