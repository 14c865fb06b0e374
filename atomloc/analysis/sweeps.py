"""Controlled sweeps: metric curves with bootstrap intervals, dose to detect, estimator efficiency,
which method wins where (decision maps) and sanity checks on the curves.

Every function takes the per-frame score rows of a sweep (one row per method and
frame) with the columns ``method, material, dose_e_per_A2, defocus_nm,
pixel_size_pm, dataset, frame, f1, precision, recall, rmse_pm, crlb_matched_pm``
(those a function groups by or reads); ``(dataset, frame)`` names one image, the
same image for every method.  Doses are in e/Å², defocus in nm, pixel sizes and
position errors in pm.

Intervals are percentile bootstraps over frames.  Every random draw comes from
``numpy.random.default_rng`` seeded by ``seed`` and the position of the group in
sorted key order, and rows are put into a canonical order first, so equal
inputs give equal tables whatever their row order.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd

_CHUNK = 2_000_000  # most indices drawn at once in one bootstrap (memory bound)


# --------------------------------------------------------------------------- helpers


def _keys(by) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def _canonical(rows: pd.DataFrame, keys: Sequence[str], extra: Sequence[str] = ()) -> pd.DataFrame:
    """``rows`` sorted by ``keys``, image and ``extra`` columns, so that row order cannot change a draw."""
    cols = list(dict.fromkeys([*keys, *[c for c in ("dataset", "frame", "method", *extra) if c in rows]]))
    return rows.sort_values(cols, kind="mergesort", na_position="last").reset_index(drop=True)


def _groups(rows: pd.DataFrame, keys: Sequence[str]) -> Iterator[tuple[int, tuple, np.ndarray]]:
    """(position in sorted key order, key tuple, row positions) of each group; rows with a NaN key are left out."""
    g = rows.groupby(list(keys), sort=True)
    codes = g.ngroup().to_numpy()
    index = g.size().index
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(index) + 1))
    for i, key in enumerate(index):
        yield i, key if isinstance(key, tuple) else (key,), order[bounds[i]:bounds[i + 1]]


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def _boot_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement, same size) of ``values``."""
    n = len(values)
    out = np.empty(n_boot)
    step = max(1, _CHUNK // max(n, 1))
    for s in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - s), n))
        out[s:s + len(idx)] = values[idx].mean(axis=1)
    return out


def _quantile(samples: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile (numpy's default) that handles ±inf without NaN."""
    s = np.sort(np.asarray(samples, dtype=np.float64))
    pos = q * (len(s) - 1)
    i = int(np.floor(pos))
    f = pos - i
    a, b = s[i], s[min(i + 1, len(s) - 1)]
    if f == 0 or a == b:
        return float(a)
    if np.isinf(a) or np.isinf(b):
        return float(b if np.isinf(b) else a)
    return float(a + (b - a) * f)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    return _quantile(samples, (1 - level) / 2), _quantile(samples, (1 + level) / 2)


def _mean_ci(values, n_boot: int, level: float, rng: np.random.Generator) -> tuple[float, float, float]:
    v = _finite(values)
    if len(v) == 0:
        return (float("nan"),) * 3
    mean = float(v.mean())
    if len(v) == 1:
        return mean, mean, mean
    return (mean, *_interval(_boot_means(v, n_boot, rng), level))


def _check(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


# --------------------------------------------------------------------------- public


def bootstrap_mean_ci(values, *, n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of the finite ``values`` with a percentile bootstrap interval.

    Parameters
    ----------
    values : array_like
        Any numbers (any unit); NaN and ±inf are left out.
    n_boot : int
        Bootstrap resamples (with replacement, of the same size).
    level : float
        Coverage of the interval, in (0, 1).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (mean, lo, hi) : tuple of float
        In the unit of ``values``; all NaN without finite values, and
        ``lo == hi == mean`` for one value.
    """
    _check(n_boot, level)
    return _mean_ci(values, n_boot, level, np.random.default_rng(seed))


def curve_table(rows: pd.DataFrame, *, x: str, by: Sequence[str] = ("material", "method"),
                metrics: Sequence[str] = ("f1", "precision", "recall", "rmse_pm"), n_boot: int = 1000,
                level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean of each metric with a bootstrap interval over frames, per group and value of ``x``.

    Parameters
    ----------
    rows : DataFrame
        Per-frame scores (see the module docstring).
    x : str
        The swept column, e.g. ``dose_e_per_A2`` (e/Å²), ``defocus_nm`` (nm), ``pixel_size_pm`` (pm).
    by : sequence of str
        Columns that split the curves (one curve per distinct combination).
    metrics : sequence of str
        Metric columns present in ``rows`` (others are skipped); NaN values are left out of each mean.
    n_boot, level, seed
        As in :func:`bootstrap_mean_ci`; cell ``i`` (in sorted ``(*by, x)`` order) draws from
        ``default_rng([seed, i])``.

    Returns
    -------
    DataFrame
        One row per ``(*by, x)`` in sorted order: ``*by, x, n_images`` (rows in the cell) and
        ``<metric>_mean, <metric>_lo, <metric>_hi`` for each metric, in the metric's unit.
    """
    _check(n_boot, level)
    keys = [*_keys(by), x]
    metrics = [m for m in metrics if m in rows.columns]
    rows = _canonical(rows, keys, metrics)
    arrays = {m: rows[m].to_numpy(dtype=np.float64) for m in metrics}
    out = []
    for i, key, idx in _groups(rows, keys):
        rng = np.random.default_rng([seed, i])
        row = {**dict(zip(keys, key)), "n_images": len(idx)}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_lo"], row[f"{m}_hi"] = _mean_ci(arrays[m][idx], n_boot, level, rng)
        out.append(row)
    columns = [*keys, "n_images", *[f"{m}_{s}" for m in metrics for s in ("mean", "lo", "hi")]]
    return pd.DataFrame(out, columns=columns)


def _crossing(means: np.ndarray, doses: np.ndarray, target: float) -> np.ndarray:
    """First crossing of ``target`` by ``means`` (..., n_doses), log-linear between doses; +inf if never."""
    reached = means >= target
    k = np.argmax(reached, axis=-1)
    prev = np.maximum(k - 1, 0)
    m_k = np.take_along_axis(means, k[..., None], -1)[..., 0]
    m_p = np.take_along_axis(means, prev[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(k > 0, (target - m_p) / (m_k - m_p), 0.0)
    dose = np.where(t >= 1, doses[k], doses[prev] * (doses[k] / doses[prev]) ** t)  # exact at the doses swept
    return np.where(reached.any(axis=-1), dose, np.inf)


def _dose_text(dose: float, lo: float, hi: float, reached: bool, below: bool, max_dose: float) -> str:
    if not reached:
        return f"not reached up to {max_dose:.3g} e/Å²"
    f = (lambda v: "∞" if np.isposinf(v) else "n/a" if np.isnan(v) else f"{v:.3g}")
    text = f"{f(dose)} [{f(lo)}, {f(hi)}] e/Å²"
    return f"≤ {text} (reached at the lowest dose)" if below else text


def dose_to_detect(rows: pd.DataFrame, *, f1_target: float = 0.95, by: Sequence[str] = ("material", "method"),
                   n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The dose (e/Å²) at which the mean F1 first reaches ``f1_target``, with a bootstrap interval.

    For each group the (finite, positive) doses with at least one finite F1 are sorted and the mean F1
    computed at each.  With ``d_k`` the first dose whose mean reaches the target,
    the dose to detect is ``d_0`` when ``k == 0`` (flagged ``below_range``: the
    true value is at or below the lowest dose swept), else the interpolation
    linear in log dose between ``(d_{k-1}, F1_{k-1})`` and ``(d_k, F1_k)``.
    Later dips below the target are not looked at (see :func:`monotone_violations`).

    The interval resamples the frames at each dose independently (with
    replacement), recomputes the crossing, and takes percentiles; a resample that
    never reaches the target counts as +inf, so ``hi`` (and ``lo``) can be inf.

    Parameters
    ----------
    rows : DataFrame
        Per-frame scores with ``dose_e_per_A2`` (e/Å²), ``f1`` and the ``by`` columns.
    f1_target : float
        The F1 to reach, in [0, 1].
    by : sequence of str
        One dose to detect per distinct combination.
    n_boot, level, seed
        As in :func:`bootstrap_mean_ci`; group ``i`` (in sorted ``by`` order) draws from
        ``default_rng([seed, i])``.

    Returns
    -------
    DataFrame
        One row per group: ``*by, dose_to_detect_e_per_A2, lo, hi`` (e/Å²), ``reached``
        (False: the dose is NaN, and ``lo``/``hi`` still the bootstrap percentiles),
        ``below_range``, ``dose_min_e_per_A2, dose_max_e_per_A2`` (the doses swept),
        ``n_images`` and ``text`` (e.g. ``"1.2e+03 [980, 1.5e+03] e/Å²"`` or
        ``"not reached up to 1e+05 e/Å²"``).
    """
    _check(n_boot, level)
    keys = _keys(by)
    ok = np.isfinite(rows[["f1", "dose_e_per_A2"]].to_numpy(dtype=np.float64)).all(axis=1)
    rows = _canonical(rows[ok], [*keys, "dose_e_per_A2"], ["f1"])
    dose_all = rows["dose_e_per_A2"].to_numpy(dtype=np.float64)
    f1_all = rows["f1"].to_numpy(dtype=np.float64)
    out = []
    for i, key, idx in _groups(rows, keys):
        rng = np.random.default_rng([seed, i])
        doses, start = np.unique(dose_all[idx], return_index=True)  # idx is sorted by dose within the group
        per_dose = np.split(f1_all[idx], start[1:])
        means = np.array([v.mean() for v in per_dose])
        if doses[0] <= 0:
            raise ValueError(f"doses must be positive (log-linear interpolation), got {doses[0]} e/Å² in {key}")
        point = float(_crossing(means[None], doses, f1_target)[0])
        boot = np.column_stack([_boot_means(v, n_boot, rng) for v in per_dose])
        lo, hi = _interval(_crossing(boot, doses, f1_target), level)
        reached = bool(np.isfinite(point))
        below = reached and bool(means[0] >= f1_target)
        dose = point if reached else float("nan")
        out.append({**dict(zip(keys, key)), "dose_to_detect_e_per_A2": dose, "lo": lo, "hi": hi,
                    "reached": reached, "below_range": below, "dose_min_e_per_A2": float(doses[0]),
                    "dose_max_e_per_A2": float(doses[-1]), "n_images": len(idx),
                    "text": _dose_text(dose, lo, hi, reached, below, float(doses[-1]))})
    columns = [*keys, "dose_to_detect_e_per_A2", "lo", "hi", "reached", "below_range", "dose_min_e_per_A2",
               "dose_max_e_per_A2", "n_images", "text"]
    return pd.DataFrame(out, columns=columns)


def efficiency_table(rows: pd.DataFrame, *, by: Sequence[str] = ("material", "method", "dose_e_per_A2"),
                     n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean RMSE / CRLB per group (1 = efficient estimator) with a bootstrap interval over frames.

    The ratio is taken per frame, ``rmse_pm / crlb_matched_pm`` (both pm, the CRLB
    over the columns that method matched in that frame); frames where it is not
    finite (nothing matched, no bound) are left out.

    Returns
    -------
    DataFrame
        One row per group (sorted): ``*by, n_images`` (frames with a finite ratio; groups with
        none are kept, with NaN), ``ratio_mean, ratio_lo, ratio_hi`` (dimensionless).
    """
    _check(n_boot, level)
    keys = _keys(by)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = rows["rmse_pm"].to_numpy(dtype=np.float64) / rows["crlb_matched_pm"].to_numpy(dtype=np.float64)
    rows = _canonical(rows.assign(_ratio=np.where(np.isfinite(ratio), ratio, np.nan)), keys, ["_ratio"])
    values = rows["_ratio"].to_numpy()
    out = []
    for i, key, idx in _groups(rows, keys):
        v = _finite(values[idx])
        mean, lo, hi = _mean_ci(v, n_boot, level, np.random.default_rng([seed, i]))
        out.append({**dict(zip(keys, key)), "n_images": len(v), "ratio_mean": mean, "ratio_lo": lo, "ratio_hi": hi})
    return pd.DataFrame(out, columns=[*keys, "n_images", "ratio_mean", "ratio_lo", "ratio_hi"])


def decision_map(rows: pd.DataFrame, *, cell: Sequence[str] = ("material", "dose_e_per_A2", "defocus_nm"),
                 metric: str = "f1", n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 spreads: dict | None = None, cost: dict | None = None) -> pd.DataFrame:
    """Per cell of the sweep, the method with the highest mean ``metric``, the runner-up and whether it is a tie.

    Rows are first averaged per (cell, image, method) (one value per image unless
    rows repeat), then each method's mean is taken over its images with a finite
    value.  ``best`` has the highest mean, ``runner_up`` the next; equal means are
    ordered by method name.  The interval on the margin is a paired percentile
    bootstrap: the images ``(dataset, frame)`` that both methods have are
    resampled with replacement and the mean difference ``best - runner_up``
    recomputed (one draw for both methods).

    A cell is a ``tie`` when ``margin_lo <= 0`` (the difference is not resolved;
    also when no image has both methods), or when ``margin`` does not exceed
    ``max(spreads[best], spreads[runner_up])``, the run-to-run spread of the
    learned methods' metric across training seeds (missing: 0).  Higher is
    better: pass a negated column for errors such as ``rmse_pm``.

    Parameters
    ----------
    rows : DataFrame
        Per-frame scores with ``method, dataset, frame``, the ``cell`` columns and ``metric``.
    cell : sequence of str
        The columns that define a cell of the map.
    metric : str
        The column to compare (higher is better).
    n_boot, level, seed
        As in :func:`bootstrap_mean_ci`; cell ``i`` (sorted) draws from ``default_rng([seed, i])``.
    spreads : dict, optional
        ``{method: spread}`` in the unit of ``metric``.
    cost : dict, optional
        ``{method: cost}`` (e.g. ms per image): of methods with exactly equal
        means the cheaper ranks first (then the name), so that a cell where
        several methods are perfect names the cheapest of them.

    Returns
    -------
    DataFrame
        One row per cell with a finite value (sorted): ``*cell, n_images`` (distinct images in the cell
        with a finite value), ``best, runner_up``
        (``""`` when the cell has one method), ``best_mean, runner_up_mean, margin, margin_lo, margin_hi``
        (unit of ``metric``; NaN without a runner-up), ``n_paired`` (images both have) and ``tie``
        (False without a runner-up), ``n_at_best`` (methods whose mean equals the best one).
    """
    _check(n_boot, level)
    keys = _keys(cell)
    spreads = spreads or {}
    cost = cost or {}
    finite = rows[np.isfinite(rows[metric].to_numpy(dtype=np.float64))]
    per_image = finite.groupby([*keys, "dataset", "frame", "method"], sort=True)[metric].mean()
    table = per_image.unstack("method").reset_index()  # one row per (cell, image), one column per method
    methods = [c for c in table.columns if c not in (*keys, "dataset", "frame")]
    values = table[methods].to_numpy(dtype=np.float64)
    names = np.array(methods, dtype=object)
    out = []
    for i, key, idx in _groups(table, keys):
        v = values[idx]
        counts = np.isfinite(v).sum(axis=0)
        with np.errstate(invalid="ignore"):
            means = np.nansum(v, axis=0) / counts  # NaN for methods without a value in this cell
        order = sorted(np.flatnonzero(counts), key=lambda j: (-means[j], float(cost.get(names[j], np.inf)), names[j]))
        n_at_best = int(np.sum(np.isclose(means[order], means[order[0]], rtol=0.0, atol=1e-12)))
        row = {**dict(zip(keys, key)), "n_images": len(idx), "n_at_best": n_at_best, "best": names[order[0]],
               "runner_up": "",
               "best_mean": float(means[order[0]]), "runner_up_mean": np.nan, "margin": np.nan,
               "margin_lo": np.nan, "margin_hi": np.nan, "n_paired": 0, "tie": False}
        if len(order) > 1:
            b, r = order[0], order[1]
            diffs = v[:, b] - v[:, r]
            diffs = diffs[np.isfinite(diffs)]
            row["runner_up"] = names[r]
            row["runner_up_mean"] = float(means[r])
            row["margin"] = row["best_mean"] - row["runner_up_mean"]
            row["n_paired"] = len(diffs)
            if len(diffs):
                _, row["margin_lo"], row["margin_hi"] = _mean_ci(diffs, n_boot, level, np.random.default_rng([seed, i]))
            spread = max(float(spreads.get(names[b], 0.0)), float(spreads.get(names[r], 0.0)))
            row["tie"] = bool(not row["margin_lo"] > 0 or row["margin"] <= spread)
        out.append(row)
    columns = [*keys, "n_images", "best", "runner_up", "best_mean", "runner_up_mean", "margin", "margin_lo",
               "margin_hi", "n_paired", "tie", "n_at_best"]
    return pd.DataFrame(out, columns=columns)


def monotone_violations(curve: pd.DataFrame, *, x: str = "dose_e_per_A2", by: Sequence[str] = ("material", "method"),
                        metric: str = "f1") -> pd.DataFrame:
    """Consecutive points of a :func:`curve_table` where ``metric`` falls by more than the intervals allow.

    Within each curve (``by``), sorted by ``x``, the pair ``x_i < x_{i+1}`` is a
    violation when ``<metric>_hi`` at ``x_{i+1}`` is below ``<metric>_lo`` at
    ``x_i``: the intervals do not overlap and the later one is lower.  Use for
    metrics expected to rise with ``x`` (F1 with dose); one row per ``(*by, x)``
    expected (pool other swept columns into ``by`` otherwise).

    Returns
    -------
    DataFrame
        ``*by, x_low, x_high, <metric>_mean_low, <metric>_mean_high, <metric>_lo_low, <metric>_hi_high``,
        one row per violation; empty (with these columns) when the curves are monotone within their intervals.
    """
    keys = _keys(by)
    m = metric
    columns = [*keys, "x_low", "x_high", f"{m}_mean_low", f"{m}_mean_high", f"{m}_lo_low", f"{m}_hi_high"]
    c = curve.sort_values([*keys, x], kind="mergesort").reset_index(drop=True)
    nxt = c.groupby(keys, sort=False)[[x, f"{m}_mean", f"{m}_lo", f"{m}_hi"]].shift(-1)
    bad = nxt[x].notna() & (nxt[x] > c[x]) & (nxt[f"{m}_hi"] < c[f"{m}_lo"])
    out = pd.DataFrame({**{k: c.loc[bad, k] for k in keys}, "x_low": c.loc[bad, x], "x_high": nxt.loc[bad, x],
                        f"{m}_mean_low": c.loc[bad, f"{m}_mean"], f"{m}_mean_high": nxt.loc[bad, f"{m}_mean"],
                        f"{m}_lo_low": c.loc[bad, f"{m}_lo"], f"{m}_hi_high": nxt.loc[bad, f"{m}_hi"]},
                       columns=columns)
    return out.reset_index(drop=True)


def interval_text(mean: float, lo: float, hi: float, decimals: int = 3) -> str:
    """``"0.981 [0.975, 0.986]"``: a mean and its interval; ``"n/a"`` for a NaN mean, ``∞`` for inf.

    A NaN bound reads ``n/a``; with both bounds NaN only the mean is written.
    """
    def f(v: float) -> str:
        if np.isnan(v):
            return "n/a"
        if np.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.{decimals}f}"

    if np.isnan(mean):
        return "n/a"
    if np.isnan(lo) and np.isnan(hi):
        return f(mean)
    return f"{f(mean)} [{f(lo)}, {f(hi)}]"


# --------------------------------------------------------------------------- the sweep report


def sweep_rows(metrics: pd.DataFrame, frames: pd.DataFrame, *, match_radius_frac: float) -> pd.DataFrame:
    """Per-frame truth scores of a sweep joined to the grid point of each frame.

    Parameters
    ----------
    metrics : DataFrame
        :func:`atomloc.analysis.evaluate.evaluate_series` rows of every method
        (``method, dataset, frame, reference, f1, ..., match_radius_px``).
    frames : DataFrame
        :meth:`atomloc.simulate.sweep.SweepSpec.frame_table` records of every
        sweep (``dataset, frame, sweep, material, pixel_size_pm,
        dose_e_per_A2, defocus_nm, seed, nominal_pixel``).
    match_radius_frac : float
        The scoring's match radius over the column spacing, to recover
        ``spacing_px`` (the scored columns' nearest-neighbour spacing, px).

    Returns
    -------
    DataFrame
        The truth rows with the grid columns of ``frames`` (theirs replace
        ``dose_e_per_A2`` and ``defocus_nm``, exact values rather than the
        series' floats) and ``spacing_px``, which is the mean over the frames of
        one pixel size (rounded to 0.01 px) so that it serves as a grid axis.
    """
    truth = metrics[metrics["reference"] == "truth"].drop(columns=["dose_e_per_A2", "defocus_nm"], errors="ignore")
    rows = truth.merge(frames, on=["dataset", "frame"], how="inner", validate="many_to_one")
    spacing = (rows["match_radius_px"] / float(match_radius_frac)).groupby(rows["dataset"]).transform("mean")
    return rows.assign(spacing_px=spacing.round(2))


def sweep_tables(rows: pd.DataFrame, *, reference_doses: dict, learned: Sequence[str] = (),
                 learned_spread_f1: float = 0.0, f1_target: float = 0.95, efficiency_dose_e_per_A2: float = 1.0e4,
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Every table of the sweep report from :func:`sweep_rows`.

    Slices: the dose sweep is the in-focus frames (defocus 0) at the nominal
    pixel size; the defocus curve the nominal pixel size at the material's
    reference dose; the spacing curve the in-focus frames at that dose.  The
    decision maps are all (dose x defocus) cells at the nominal pixel size and
    all (dose x spacing) cells in focus.

    Parameters
    ----------
    rows : DataFrame
        :func:`sweep_rows`.
    reference_doses : dict
        material -> the dose (e/Å²) at which its defocus and spacing curves are read.
    learned : sequence of str
        Trained methods: their decision-map wins must exceed ``learned_spread_f1``,
        and the monotonicity check (a check that the sweep is controlled) is
        made on the other methods.
    learned_spread_f1 : float
        Run-to-run spread of a trained model's F1 across training seeds.
    f1_target : float
        F1 of "dose to detect".
    efficiency_dose_e_per_A2 : float
        Frames at or above this dose (in focus, nominal pixel size) make the
        pooled efficiency rows.
    n_boot, level, seed
        Bootstrap settings (see :func:`bootstrap_mean_ci`).

    Returns
    -------
    dict of str to DataFrame
        ``curves`` (column ``axis``: dose / defocus / spacing, the grid value in
        ``x``), ``dose_to_detect``, ``efficiency`` (``scope``: ``per dose`` /
        ``>= <dose>`` pooled), ``decision_map`` (``axis``: defocus / spacing;
        the cell's value in ``y``; ``usable``: the best method reaches
        ``f1_target``, else no method is to be trusted there), ``monotone`` (violations of the dose curve
        by the methods not in ``learned``).
    """
    boot = {"n_boot": n_boot, "level": level, "seed": seed}
    ref_dose = rows["material"].map({k: float(v) for k, v in reference_doses.items()})
    at_ref = np.isclose(rows["dose_e_per_A2"], ref_dose)
    in_focus = rows["defocus_nm"] == 0.0
    nominal = rows["nominal_pixel"].astype(bool)
    dose_rows = rows[in_focus & nominal]
    metrics = ("f1", "precision", "recall", "rmse_pm")
    parts = []
    for axis, sel, x in (("dose", in_focus & nominal, "dose_e_per_A2"), ("defocus", nominal & at_ref, "defocus_nm"),
                         ("spacing", in_focus & at_ref, "spacing_px")):
        curve = curve_table(rows[sel], x=x, metrics=metrics, **boot)
        parts.append(curve.rename(columns={x: "x"}).assign(axis=axis))
    curves = pd.concat(parts, ignore_index=True)
    curves = curves[["axis", "material", "method", "x", *[c for c in curves if c not in
                                                          ("axis", "material", "method", "x")]]]

    detect = dose_to_detect(dose_rows, f1_target=f1_target, **boot)
    per_dose = efficiency_table(dose_rows, **boot).assign(scope="per dose")
    high = dose_rows[dose_rows["dose_e_per_A2"] >= efficiency_dose_e_per_A2]
    pooled = efficiency_table(high, by=("material", "method"), **boot).assign(
        scope=f">= {efficiency_dose_e_per_A2:g}", dose_e_per_A2=np.nan)
    efficiency = pd.concat([per_dose, pooled], ignore_index=True)
    efficiency = efficiency[["scope", "material", "method", "dose_e_per_A2", "n_images", "ratio_mean", "ratio_lo",
                             "ratio_hi"]]

    spreads = {m: float(learned_spread_f1) for m in learned}
    maps = []
    for axis, sel, y in (("defocus", nominal, "defocus_nm"), ("spacing", in_focus, "spacing_px")):
        table = decision_map(rows[sel], cell=("material", "dose_e_per_A2", y), spreads=spreads, **boot)
        maps.append(table.rename(columns={y: "y"}).assign(axis=axis, usable=table["best_mean"] >= f1_target))
    decision = pd.concat(maps, ignore_index=True)
    decision = decision[["axis", "material", "dose_e_per_A2", "y", *[c for c in decision if c not in
                                                                     ("axis", "material", "dose_e_per_A2", "y")]]]

    dose_curve = curves[(curves["axis"] == "dose") & ~curves["method"].isin(list(learned))]
    monotone = monotone_violations(dose_curve.rename(columns={"x": "dose_e_per_A2"}))
    return {"curves": curves, "dose_to_detect": detect, "efficiency": efficiency, "decision_map": decision,
            "monotone": monotone}
