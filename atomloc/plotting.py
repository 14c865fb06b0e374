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


def method_colors(methods) -> dict:
    """A fixed colour per method name: the sorted names on tab10, then tab20's light shades, then a hue wheel.

    Pass the same (full) list of methods to get the same colours in every figure.
    """
    import matplotlib

    names = sorted({m for m in methods if isinstance(m, str) and m})
    if len(names) <= 20:
        tab20 = matplotlib.colormaps["tab20"]
        palette = [tab20(2 * k) for k in range(10)] + [tab20(2 * k + 1) for k in range(10)]
    else:
        hsv = matplotlib.colormaps["hsv"]
        palette = [hsv(k / len(names)) for k in range(len(names))]
    return dict(zip(names, palette))


def _panel_grid(plt, n: int, width: float, height: float, **kwargs):
    """Up to three panels per row (fewer for wide panels); the unused axes are switched off."""
    ncol = max(1, min(n, 3, int(20 // width)))
    nrow = max(1, int(np.ceil(n / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol + 1.8, height * nrow + 0.5), squeeze=False,
                             layout="constrained", **kwargs)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    return fig, axes.ravel()[:n]


def _panel_tables(table: pd.DataFrame, panel: str | None) -> list[tuple[str, pd.DataFrame]]:
    if panel is None or panel not in table.columns:
        return [("", table)]
    return [(str(k), g) for k, g in table.groupby(panel, sort=True)]


def plot_sweep_curves(curve: pd.DataFrame, paths, *, x: str, metric: str = "f1", xlabel: str, ylabel: str,
                      logx: bool = False, panel: str | None = "material", title: str = "",
                      colors: dict | None = None) -> None:
    """A metric against a swept parameter with its bootstrap band: one panel per ``panel`` value, a line per method.

    ``curve`` is a :func:`atomloc.analysis.sweeps.curve_table` with one row per
    (``panel``, ``method``, ``x``) and the columns ``<metric>_mean, _lo, _hi``;
    the band is the interval.  Panels share the y axis; with ``metric == "f1"`` a
    dashed line marks F1 = 0.95.  ``colors`` (``{method: colour}``, e.g. from
    :func:`method_colors` of all methods) overrides the default colour per method name.
    """
    keys = [k for k in (panel, "method", x) if k is not None and k in curve.columns]
    if curve.duplicated(keys).any():
        raise ValueError(f"more than one row per {keys}: split the curves further (e.g. one figure per defocus)")
    plt = _pyplot()
    colors = {**method_colors(curve["method"]), **(colors or {})}
    tables = _panel_tables(curve, panel)
    fig, axes = _panel_grid(plt, len(tables), 4.0, 3.2, sharey=True)
    handles = {}
    for ax, (name, t) in zip(axes, tables):
        for method, g in t.sort_values(x).groupby("method", sort=True):
            c = colors.get(method, "k")
            (line,) = ax.plot(g[x], g[f"{metric}_mean"], "o-", ms=3, lw=1, color=c, label=str(method))
            ax.fill_between(g[x], g[f"{metric}_lo"], g[f"{metric}_hi"], color=c, alpha=0.2, lw=0)
            handles.setdefault(str(method), line)
        if metric == "f1":
            handles.setdefault("F1 = 0.95", ax.axhline(0.95, color="k", ls="--", lw=0.8))
        if logx:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3, which="both" if logx else "major")
    axes[0].set_ylabel(ylabel)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside right upper", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, paths)


def _short(name: str, n: int = 9) -> str:
    return name if len(name) <= n else name[:n - 1] + "…"


def plot_decision_map(table: pd.DataFrame, paths, *, x: str, y: str, panel: str | None = "material",
                      xlabel: str, ylabel: str, logx: bool = True, title: str = "",
                      colors: dict | None = None) -> None:
    """Which method wins where: a :func:`atomloc.analysis.sweeps.decision_map` as a coloured grid per panel.

    Each panel is a categorical grid, the sorted ``x`` values as columns and the
    sorted ``y`` values as rows (ticks ``%g``), so log-spaced doses come out evenly
    spaced; ``logx`` is accepted for symmetry with :func:`plot_sweep_curves` and
    changes nothing.  A cell is coloured by its best method (a fixed colour per
    method name for all panels; pass ``colors=method_colors(all methods)`` for the
    same colours across figures) and reads the method's short
    name and the margin over the runner-up (``+0.012``), or ``tie`` with both
    names, hatched, when the methods are not resolved (``tie``, the number of
    methods and their F1 on a neutral colour where more than two share the best
    mean: ``n_at_best``).  Where the table has a
    ``usable`` column and it is False (no method reaches the F1 target), the cell
    is light grey and reads ``none`` with the best method's F1.  Cells absent
    from the table stay blank.  One row per (``panel``, ``x``, ``y``) is required.
    """
    del logx  # categorical axes
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch, Rectangle

    keys = [k for k in (panel, x, y) if k is not None and k in table.columns]
    if table.duplicated(keys).any():
        raise ValueError(f"more than one row per {keys}: one decision map per remaining swept column")
    plt = _pyplot()
    colors = {**method_colors(pd.concat([table["best"], table["runner_up"]])), **(colors or {})}
    tables = _panel_tables(table, panel)
    nx = max((t[x].nunique() for _, t in tables), default=1)
    ny = max((t[y].nunique() for _, t in tables), default=1)
    fig, axes = _panel_grid(plt, len(tables), max(3.0, 0.8 * nx + 1.0), max(2.4, 0.6 * ny + 1.0))
    fontsize = 6 if nx <= 8 else 5
    for ax, (name, t) in zip(axes, tables):
        xs, ys = np.sort(t[x].unique()), np.sort(t[y].unique())
        for r in t.to_dict("records"):
            i, j = int(np.searchsorted(xs, r[x])), int(np.searchsorted(ys, r[y]))
            best, runner, tie = str(r["best"]), str(r["runner_up"] or ""), bool(r["tie"])
            if not bool(r.get("usable", True)):
                ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, facecolor="0.92", edgecolor="white", lw=1.0))
                ax.text(i, j, f"none\n({_short(best)}\n{r['best_mean']:.2f})", ha="center", va="center",
                        fontsize=fontsize, color="0.35")
                continue
            face = colors.get(best, (0.8, 0.8, 0.8))
            if tie:  # a tie names no winner: the best method's colour washed out, neutral for several equals
                n_best = int(r.get("n_at_best", 1) or 1)
                face = (0.85, 0.88, 0.92) if n_best > 2 else tuple(0.45 * np.asarray(to_rgb(face)) + 0.55)
            ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, facecolor=face, edgecolor="0.2" if tie else "white",
                                   hatch="///" if tie else None, lw=0.6 if tie else 1.0))
            if tie:
                text = (f"tie\n{n_best} methods\nat {r['best_mean']:.2f}" if n_best > 2
                        else f"tie\n{_short(best)}\n{_short(runner)}")
            elif runner and np.isfinite(r["margin"]):
                text = f"{_short(best)}\n{r['margin']:+.3f}"
            else:
                text = _short(best)
            lum = np.dot(to_rgb(face), (0.299, 0.587, 0.114))
            ax.text(i, j, text, ha="center", va="center", fontsize=fontsize, color="white" if lum < 0.5 else "black",
                    bbox=dict(boxstyle="round,pad=0.15", fc=face, ec="none", alpha=0.85) if tie else None)
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_ylim(-0.5, len(ys) - 0.5)
        ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs], fontsize=7, rotation=45 if len(xs) > 6 else 0)
        ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys], fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=9)
    handles = [Patch(facecolor=c, label=m) for m, c in colors.items()
               if m in set(table["best"]) | set(table["runner_up"])]
    handles.append(Patch(facecolor="white", edgecolor="0.2", hatch="///", label="tie (not resolved)"))
    if "usable" in table and not table["usable"].astype(bool).all():
        handles.append(Patch(facecolor="0.92", edgecolor="0.6", label="none reaches the F1 target"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, paths)


def plot_image_grid(rows: Sequence[Sequence[dict]], paths, suptitle: str = "", cmap: str = "magma",
                    panel_in: float = 1.9) -> None:
    """A grid of images: ``rows`` of panels (dicts with ``image`` and ``title``; None leaves a blank).

    Each panel has its own grey scale (1st to 99.5th percentile).
    """
    plt = _pyplot()
    nrow = max(1, len(rows))
    ncol = max(1, max((len(r) for r in rows), default=1))
    fig, axes = plt.subplots(nrow, ncol, figsize=(panel_in * ncol, panel_in * nrow + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, row in enumerate(rows):
        for j, p in enumerate(row):
            if p is None:
                continue
            image = np.asarray(p["image"], dtype=float)
            lo, hi = np.percentile(image, [1, 99.5])
            axes[i, j].imshow(image, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
            axes[i, j].set_title(p.get("title", ""), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_chemistry_columns(haadf: np.ndarray, maps: np.ndarray, elements: Sequence[str], columns: pd.DataFrame,
                           paths, title: str = "") -> None:
    """The HAADF with every column's composition as a coloured point, then each element's map.

    ``columns``: ``x, y`` (pixels, x = column index) and ``composition``.
    """
    plt = _pyplot()
    n = 1 + len(elements)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 3.4), squeeze=False)
    axes = axes[0]
    axes[0].imshow(haadf, cmap="gray", interpolation="nearest")
    comps = sorted(columns["composition"].unique()) if len(columns) else []
    cmap = plt.get_cmap("tab10")
    for k, comp in enumerate(comps):
        sel = columns["composition"] == comp
        axes[0].scatter(columns.loc[sel, "x"], columns.loc[sel, "y"], s=6, color=cmap(k % 10),
                        label=f"{comp} ({int(sel.sum())})")
    _legend(axes[0], fontsize=6, loc="upper right", markerscale=2)
    axes[0].set_title(f"{title} HAADF + composition", fontsize=8)
    for ax, e, m in zip(axes[1:], elements, maps):
        ax.imshow(m, cmap="magma", interpolation="nearest")
        ax.set_title(f"{e} fused", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, paths)
