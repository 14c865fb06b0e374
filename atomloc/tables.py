"""Benchmark tables: per-image metric rows summarised per method, written as CSV
(machine) and Markdown (human) side by side."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from atomloc.io import CSV_FLOAT_FORMAT, atomic_path

# metric column -> (Markdown header with unit, decimals)
SUMMARY_METRICS = {
    "f1": ("F1", 3),
    "precision": ("precision", 3),
    "recall": ("recall", 3),
    "jaccard": ("Jaccard", 3),
    "chamfer_px": ("Chamfer (px)", 3),
    "rmse_px": ("RMSE (px)", 3),
    "rmse_pm": ("RMSE (pm)", 2),
    "time_ms": ("time per image (ms)", 1),
}


def summarise(per_image: pd.DataFrame, by: str | list[str] = "method") -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; 0 for one image) of each metric per group.

    Returns one row per group (``by``: one column or a list) with ``n_images``,
    summed ``tp, fp, fn`` and ``<metric>_mean`` / ``<metric>_std`` for every
    metric in :data:`SUMMARY_METRICS` present in ``per_image``.
    """
    keys = [by] if isinstance(by, str) else list(by)
    metrics = [m for m in SUMMARY_METRICS if m in per_image.columns]
    rows = []
    for key, g in per_image.groupby(keys, sort=True):
        row = {**dict(zip(keys, key)), "n_images": len(g)}
        for c in ("tp", "fp", "fn"):
            if c in g:
                row[c] = int(g[c].sum())
        for m in metrics:
            vals = g[m].to_numpy(dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            row[f"{m}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0 if len(vals) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_summary(summary: pd.DataFrame, by: str | list[str] = "method") -> pd.DataFrame:
    """Human view of :func:`summarise`: one ``mean ± std`` cell per metric, units in headers."""
    keys = [by] if isinstance(by, str) else list(by)
    out = pd.DataFrame({**{k: summary[k] for k in keys}, "images": summary["n_images"]})
    for c in ("tp", "fp", "fn"):
        if c in summary:
            out[c.upper()] = summary[c]
    for m, (header, dec) in SUMMARY_METRICS.items():
        if f"{m}_mean" in summary:
            out[header] = [f"{a:.{dec}f} ± {b:.{dec}f}" if np.isfinite(a) else "n/a"
                           for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
    return out


def write_table(csv_path: str | os.PathLike, md_path: str | os.PathLike, table: pd.DataFrame,
                title: str, notes: list[str] | None = None, markdown: pd.DataFrame | None = None) -> None:
    """Write ``table`` as CSV and a titled Markdown table (``markdown`` if given) with notes."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format=CSV_FLOAT_FORMAT)
    md = markdown if markdown is not None else table
    text = f"# {title}\n\n{md.to_markdown(index=False, floatfmt='.4g')}\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text(text)
