"""Benchmark tables: per-image metric rows summarised per method, written as CSV
(machine) and Markdown (human) side by side."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from atomloc.io.files import atomic_path
from atomloc.io.positions import CSV_FLOAT_FORMAT

# metric column -> (Markdown header with unit, decimals)
SUMMARY_METRICS = {
    "f1": ("F1", 3),
    "precision": ("precision", 3),
    "recall": ("recall", 3),
    "jaccard": ("Jaccard", 3),
    "chamfer_px": ("Chamfer (px)", 3),
    "rmse_px": ("RMSE (px)", 3),
    "rmse_pm": ("RMSE (pm)", 2),
    "crlb_pm": ("CRLB (pm)", 2),
    "rmse_over_crlb": ("RMSE / CRLB", 2),
    "lattice_a_std_pm": ("a precision (pm)", 2),
    "lattice_b_std_pm": ("b precision (pm)", 2),
    "time_ms": ("time per image (ms)", 1),
}


def summarise(per_image: pd.DataFrame, by: str | list[str] = "method", metrics=None) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; 0 for one image) of each metric per group.

    Returns one row per group (``by``: one column or a list) with ``n_images``,
    summed ``tp, fp, fn`` and ``<metric>_mean`` / ``<metric>_std`` for every
    metric in :data:`SUMMARY_METRICS` present in ``per_image`` (or in ``metrics``).
    """
    keys = [by] if isinstance(by, str) else list(by)
    metrics = [m for m in (metrics or SUMMARY_METRICS) if m in per_image.columns]
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


def read_table_or_empty(path: str | os.PathLike) -> pd.DataFrame:
    """A table CSV, or an empty frame for an empty file (e.g. label metrics of a dataset without truth)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def split_rows(per_image: pd.DataFrame, splits: dict, split: str) -> pd.DataFrame:
    """Rows of the datasets of one split, scored against the truth where there is one, else the labels."""
    rows = per_image[per_image["dataset"].map(splits) == split]
    reference = "truth" if (rows["reference"] == "truth").any() else "labels"
    return rows[rows["reference"] == reference]


def dose_bins(per_image: pd.DataFrame, n_bins: int = 10) -> pd.Series:
    """Dose decile (1 = lowest) of each row, from the distinct (dataset, frame) doses."""
    frames = per_image[["dataset", "frame", "dose_e_per_A2"]].drop_duplicates(["dataset", "frame"])
    order = frames["dose_e_per_A2"].rank(method="first").to_numpy() - 1
    frames = frames.assign(dose_decile=(np.floor(order * n_bins / len(frames)).astype(int) + 1))
    merged = per_image[["dataset", "frame"]].merge(frames[["dataset", "frame", "dose_decile"]], how="left")
    return pd.Series(merged["dose_decile"].to_numpy(), index=per_image.index)


def dose_table(rows: pd.DataFrame, n_bins: int = 10) -> pd.DataFrame:
    """F1 and RMSE per method per dose decile, with each decile's dose range (e/Å²)."""
    rows = rows.assign(dose_decile=dose_bins(rows, n_bins))
    summary = summarise(rows, by=["dose_decile", "method"], metrics=["f1", "rmse_pm", "crlb_pm"])
    lo = rows.groupby("dose_decile")["dose_e_per_A2"].min()
    hi = rows.groupby("dose_decile")["dose_e_per_A2"].max()
    summary.insert(1, "dose_min_e_per_A2", summary["dose_decile"].map(lo))
    summary.insert(2, "dose_max_e_per_A2", summary["dose_decile"].map(hi))
    return summary


def conditions_table(rows: pd.DataFrame, dose_split_e_per_A2: float = 1e4) -> pd.DataFrame:
    """F1, precision, recall and RMSE per method for four imaging conditions.

    The conditions cross focus (``in_focus``: the frame's defocus within half
    the probe's depth of field, see :func:`atomloc.analysis.evaluate.evaluate_series`)
    with dose (below / at or above ``dose_split_e_per_A2``, e/Å²).  Rows
    without ``in_focus`` or dose (real series) are left out.
    """
    if not {"in_focus", "dose_e_per_A2"} <= set(rows.columns):
        return pd.DataFrame()
    rows = rows[rows["in_focus"].notna() & rows["dose_e_per_A2"].notna()]
    focus = np.where(rows["in_focus"].astype(bool), "within depth of field", "beyond depth of field")
    dose = np.where(rows["dose_e_per_A2"] >= dose_split_e_per_A2, f">= {dose_split_e_per_A2:g} e/A2",
                    f"< {dose_split_e_per_A2:g} e/A2")
    return summarise(rows.assign(focus=focus, dose=dose), by=["focus", "dose", "method"],
                     metrics=["f1", "precision", "recall", "rmse_pm"])


def compact_markdown(summary: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Markdown view of selected ``mean ± std`` metrics (std left out for single images)."""
    out = pd.DataFrame({k: summary[k] for k in keys})
    out["images"] = summary["n_images"]
    for m in metrics:
        if f"{m}_mean" not in summary:
            continue
        header, dec = SUMMARY_METRICS[m]
        out[header] = [("n/a" if not np.isfinite(a) else f"{a:.{dec}f}" if n == 1 else f"{a:.{dec}f} ± {b:.{dec}f}")
                       for a, b, n in zip(summary[f"{m}_mean"], summary[f"{m}_std"], summary["n_images"])]
    return out


def hardest_and_easiest(rows: pd.DataFrame) -> tuple[tuple[str, int], tuple[str, int]]:
    """The (dataset, frame) with the lowest and the highest F1 averaged over methods."""
    if rows.empty:
        raise ValueError("no scored images to choose from")
    mean_f1 = rows.groupby(["dataset", "frame"])["f1"].mean().sort_values(kind="stable")
    (d0, f0), (d1, f1) = mean_f1.index[0], mean_f1.index[-1]
    return (str(d0), int(f0)), (str(d1), int(f1))
