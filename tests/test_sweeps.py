"""Sweep analysis: bootstrap intervals, curves, dose to detect, efficiency, decision maps, monotonicity, plots."""

import numpy as np
import pandas as pd
import pytest

from atomloc.analysis.sweeps import (
    bootstrap_mean_ci,
    curve_table,
    decision_map,
    dose_to_detect,
    efficiency_table,
    interval_text,
    monotone_violations,
)
from atomloc.plotting import method_colors, plot_decision_map, plot_sweep_curves


def frames(cells, n_frames, f1, noise=0.0, seed=0):
    """Per-frame rows: ``cells`` = [(material, method, dose, defocus)], ``f1(material, method, dose, frame)``.

    The same (dataset, frame) for every method at one (material, dose, defocus).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for material, method, dose, defocus in cells:
        for k in range(n_frames):
            v = float(np.clip(f1(material, method, dose, k) + noise * rng.standard_normal(), 0, 1))
            rows.append({"method": method, "material": material, "dose_e_per_A2": float(dose),
                         "defocus_nm": float(defocus), "pixel_size_pm": 20.0, "spacing_px": 15.0,
                         "dataset": f"{material}_{dose:g}_{defocus:g}", "frame": k, "f1": v, "precision": v,
                         "recall": v, "rmse_pm": 8.0, "crlb_matched_pm": 4.0})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- bootstrap_mean_ci


def test_bootstrap_ci_contains_mean_and_shrinks_as_one_over_sqrt_n():
    rng = np.random.default_rng(3)
    small, large = rng.normal(5.0, 1.0, 20), rng.normal(5.0, 1.0, 2000)
    m, lo, hi = bootstrap_mean_ci(small, n_boot=2000, seed=1)
    assert m == pytest.approx(small.mean()) and lo < m < hi
    M, LO, HI = bootstrap_mean_ci(large, n_boot=2000, seed=1)
    assert LO < M < HI and LO < 5.0 < HI
    # the 95 % interval of a mean is 2 * 1.96 * sd / sqrt(n) wide (0.0877 for sd 1, n 2000)
    assert HI - LO == pytest.approx(2 * 1.96 * large.std() / np.sqrt(2000), rel=0.1)
    assert (HI - LO) < (hi - lo) / 5  # sqrt(100) = 10 times narrower, within sampling noise


def test_bootstrap_ci_edge_cases():
    assert all(np.isnan(bootstrap_mean_ci([np.nan, np.inf])))
    assert bootstrap_mean_ci([0.7, np.nan]) == (0.7, 0.7, 0.7)
    m, lo, hi = bootstrap_mean_ci([1.0, np.nan, 3.0], n_boot=500)
    assert m == 2.0 and 1.0 <= lo < m < hi <= 3.0
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1.0, 2.0], level=1.5)


# --------------------------------------------------------------------------- curve_table


def curve_rows(seed=0, drop=None):
    """Two materials x two methods x three doses, 8 frames each; F1 rises with dose (``drop``: one dip)."""
    doses = (100.0, 1000.0, 10000.0)
    level = {100.0: 0.5, 1000.0: 0.8, 10000.0: 0.97}

    def f1(material, method, dose, k):
        v = level[dose] - (0.1 if method == "b" else 0.0)
        return v - 0.4 if drop == (material, method, dose) else v

    cells = [(m, meth, d, 0.0) for m in ("MoS2", "Si") for meth in ("a", "b") for d in doses]
    return frames(cells, 8, f1, noise=0.02, seed=seed)


def test_curve_table_shape_means_and_intervals():
    rows = curve_rows()
    rows.loc[rows.index[:3], "rmse_pm"] = np.nan  # nothing matched: left out of the RMSE mean only
    curve = curve_table(rows, x="dose_e_per_A2", n_boot=400)
    assert len(curve) == 2 * 2 * 3 and (curve["n_images"] == 8).all()
    assert list(curve.columns[:4]) == ["material", "method", "dose_e_per_A2", "n_images"]
    for m in ("f1", "precision", "recall", "rmse_pm"):
        assert (curve[f"{m}_lo"] <= curve[f"{m}_mean"]).all() and (curve[f"{m}_mean"] <= curve[f"{m}_hi"]).all()
    cell = rows[(rows.material == "Si") & (rows.method == "b") & (rows.dose_e_per_A2 == 1000.0)]
    got = curve.set_index(["material", "method", "dose_e_per_A2"]).loc[("Si", "b", 1000.0)]
    assert got.f1_mean == pytest.approx(cell.f1.mean())
    assert got.f1_lo < 0.7 < got.f1_hi  # the true mean (0.8 - 0.1) within the interval
    assert got.f1_hi - got.f1_lo < 4 * 1.96 * 0.02 / np.sqrt(8)  # noise 0.02 over 8 frames: narrow
    assert (curve["rmse_pm_mean"] == 8.0).all() and (curve["rmse_pm_hi"] == 8.0).all()  # constant: no spread
    only = curve_table(rows, x="dose_e_per_A2", by=("method",), metrics=("f1", "not_a_column"), n_boot=50)
    assert len(only) == 6 and (only["n_images"] == 16).all() and "not_a_column_mean" not in only


def test_same_seed_same_tables_whatever_the_row_order():
    rows = curve_rows()
    shuffled = rows.sample(frac=1.0, random_state=5)
    for fn in (lambda r, s: curve_table(r, x="dose_e_per_A2", n_boot=200, seed=s),
               lambda r, s: dose_to_detect(r, f1_target=0.9, n_boot=200, seed=s),
               lambda r, s: efficiency_table(r, n_boot=200, seed=s),
               lambda r, s: decision_map(r, n_boot=200, seed=s)):
        pd.testing.assert_frame_equal(fn(rows, 7), fn(shuffled, 7))
    a = curve_table(rows, x="dose_e_per_A2", n_boot=200, seed=7)
    b = curve_table(rows, x="dose_e_per_A2", n_boot=200, seed=8)
    assert not np.allclose(a["f1_lo"], b["f1_lo"])  # the seed is used


# --------------------------------------------------------------------------- dose_to_detect


def logistic_rows(d50, slope=1.0, doses=np.geomspace(10.0, 1e5, 13), n_frames=12, noise=0.0, seed=0):
    """F1 = 1 / (1 + exp(-slope (ln d - ln d50))), so F1 = 0.95 at d50 * 19 ** (1 / slope)."""
    def f1(material, method, dose, k):
        return 1.0 / (1.0 + np.exp(-slope * (np.log(dose) - np.log(d50))))

    return frames([("MoS2", "a", d, 0.0) for d in doses], n_frames, f1, noise=noise, seed=seed)


def interpolation_bound(d50, slope, lo, hi):
    """Largest error in ln dose of the log-linear interpolation of the logistic between doses lo and hi.

    Linear interpolation of f(u) (u = ln dose) over a step h errs by at most h^2/8 max|f''| in F1; the
    crossing moves by that over the smallest slope f' in the bracket (f rises through the target there).
    """
    u = np.linspace(np.log(lo), np.log(hi), 2001)
    f = 1.0 / (1.0 + np.exp(-slope * (u - np.log(d50))))
    d1, d2 = slope * f * (1 - f), slope ** 2 * f * (1 - f) * (1 - 2 * f)
    return (u[-1] - u[0]) ** 2 / 8 * np.abs(d2).max() / d1.min()


def test_dose_to_detect_recovers_a_known_crossing():
    d50, doses = 300.0, np.geomspace(10.0, 1e5, 13)  # 13 doses, a factor 2.15 apart
    d95 = d50 * 19.0  # slope 1
    out = dose_to_detect(logistic_rows(d50, doses=doses), n_boot=200).iloc[0]
    assert out.reached and not out.below_range
    k = int(np.searchsorted(doses, d95))  # the doses bracketing the truth: [k-1, k]
    bound = interpolation_bound(d50, 1.0, doses[k - 1], doses[k])
    assert bound < 0.15  # the grid is fine enough for the check to mean something (15 % in dose)
    assert abs(np.log(out.dose_to_detect_e_per_A2 / d95)) <= bound
    assert out.lo == out.hi == pytest.approx(out.dose_to_detect_e_per_A2)  # identical frames: no spread
    # the exact log-linear interpolation of the two bracketing means
    f = 1.0 / (1.0 + np.exp(-(np.log(doses[[k - 1, k]]) - np.log(d50))))
    t = (0.95 - f[0]) / (f[1] - f[0])
    expected = np.exp(np.log(doses[k - 1]) + t * np.log(doses[k] / doses[k - 1]))
    assert out.dose_to_detect_e_per_A2 == pytest.approx(expected)
    assert out.dose_min_e_per_A2 == 10.0 and out.dose_max_e_per_A2 == 1e5 and out.n_images == 13 * 12

    noisy = dose_to_detect(logistic_rows(d50, doses=doses, noise=0.01, seed=4), n_boot=1000).iloc[0]
    assert noisy.lo < out.dose_to_detect_e_per_A2 < noisy.hi  # the interval covers the noise-free value
    assert abs(np.log(noisy.dose_to_detect_e_per_A2 / d95)) < bound + 0.1
    assert noisy.text.startswith(f"{noisy.dose_to_detect_e_per_A2:.3g} [")


def test_dose_to_detect_two_doses_interpolates_in_log_dose():
    rows = frames([("MoS2", "a", d, 0.0) for d in (100.0, 1000.0)], 4, lambda m, x, d, k: 0.9 if d == 100 else 1.0)
    out = dose_to_detect(rows, n_boot=100).iloc[0]
    assert out.dose_to_detect_e_per_A2 == pytest.approx(np.sqrt(100.0 * 1000.0))  # halfway in ln dose


def test_dose_to_detect_not_reached_and_below_range():
    never = dose_to_detect(logistic_rows(1e6), n_boot=200).iloc[0]  # 0.95 at 1.9e7 e/A2, above the sweep
    assert not never.reached and np.isnan(never.dose_to_detect_e_per_A2) and np.isinf(never.hi)
    assert never.text == "not reached up to 1e+05 e/Å²" and not never.below_range
    always = dose_to_detect(logistic_rows(0.1), n_boot=200).iloc[0]  # 0.95 at 1.9 e/A2, below the sweep
    assert always.reached and always.below_range and always.dose_to_detect_e_per_A2 == 10.0
    assert always.lo == always.hi == 10.0 and always.text.startswith("≤ 10 [")


def test_dose_to_detect_resamples_that_never_reach_count_as_infinite():
    # at 1000 e/A2 the mean (0.9625) just reaches 0.95; resamples with two 0.9 frames do not
    values = {100.0: [0.5] * 4, 1000.0: [0.9, 1.0, 1.0, 0.95]}
    rows = frames([("MoS2", "a", d, 0.0) for d in values], 4, lambda m, x, d, k: values[d][k])
    out = dose_to_detect(rows, n_boot=2000, seed=1).iloc[0]
    assert out.reached and np.isinf(out.hi) and np.isfinite(out.lo) and 100.0 < out.lo <= 1000.0
    assert "∞" in out.text


# --------------------------------------------------------------------------- efficiency_table


def test_efficiency_ratio_of_a_known_constant():
    rows = curve_rows()
    rows["crlb_matched_pm"] = rows["rmse_pm"] / 1.7
    rows.loc[rows.index[0], "rmse_pm"] = np.nan  # nothing matched
    rows.loc[rows.index[1], "crlb_matched_pm"] = 0.0  # no bound: infinite ratio, left out
    table = efficiency_table(rows, n_boot=200)
    assert list(table.columns) == ["material", "method", "dose_e_per_A2", "n_images", "ratio_mean", "ratio_lo",
                                   "ratio_hi"]
    assert np.allclose(table[["ratio_mean", "ratio_lo", "ratio_hi"]], 1.7)
    assert table["n_images"].tolist() == [6] + [8] * 11  # the first cell lost its two bad frames


# --------------------------------------------------------------------------- decision_map


def paired_rows(delta, noise_a=0.0, noise_b=0.0, n=30, seed=0, names=("a", "b")):
    """Two methods on the same images; image difficulty varies a lot (sd 0.1), ``a`` is ``delta`` better."""
    rng = np.random.default_rng(seed)
    base = np.clip(0.8 + 0.1 * rng.standard_normal(n), 0, 0.9)
    a = base + delta + noise_a * rng.standard_normal(n)
    b = base + noise_b * rng.standard_normal(n)
    return pd.concat([frames([("MoS2", name, 1000.0, 0.0)], n, lambda m, x, d, k, v=v: v[k])
                      for name, v in zip(names, (a, b))], ignore_index=True)


def test_decision_map_known_winner_with_clear_margin():
    table = decision_map(paired_rows(0.02, noise_a=0.005, noise_b=0.005), n_boot=1000)
    row = table.iloc[0]
    assert (row.best, row.runner_up, row.n_images, row.n_paired) == ("a", "b", 30, 30)
    assert row.margin == pytest.approx(0.02, abs=0.003) and 0 < row.margin_lo < row.margin < row.margin_hi
    assert not row.tie
    # the same margin is a tie once a's run-to-run spread across training seeds exceeds it
    assert decision_map(paired_rows(0.02, noise_a=0.005, noise_b=0.005), n_boot=1000,
                        spreads={"a": 0.03}).iloc[0].tie
    assert not decision_map(paired_rows(0.02, noise_a=0.005, noise_b=0.005), n_boot=1000,
                            spreads={"a": 0.01, "c": 0.5}).iloc[0].tie


def test_decision_map_identical_but_noisy_methods_tie():
    row = decision_map(paired_rows(0.0, noise_a=0.02, noise_b=0.02, seed=2), n_boot=1000).iloc[0]
    assert row.tie and row.margin_lo <= 0 <= row.margin_hi and abs(row.margin) < 0.01


def test_decision_map_bootstrap_is_paired_on_common_images():
    # image difficulty (sd 0.1) is shared, the difference is exactly 0.01: a paired interval has no width,
    # an unpaired one would be ~ 2 * 1.96 * 0.1 * sqrt(2 / 30) = 0.1 wide
    rows = paired_rows(0.01)
    extra = frames([("MoS2", "a", 1000.0, 0.0)], 40, lambda m, x, d, k: 1.0).iloc[30:]  # frames b lacks
    row = decision_map(pd.concat([rows, extra], ignore_index=True), n_boot=500).iloc[0]
    assert row.n_paired == 30 and row.n_images == 40
    assert row.margin_lo == pytest.approx(0.01) and row.margin_hi == pytest.approx(0.01)
    a_mean = np.concatenate([rows[rows.method == "a"].f1, np.ones(10)]).mean()
    assert row.margin == pytest.approx(a_mean - rows[rows.method == "b"].f1.mean())  # the unpaired means
    assert not row.tie


def test_decision_map_equal_means_by_name_and_single_method_cells():
    rows = paired_rows(0.0, names=("zeta", "alpha"))
    for r in (rows, rows.iloc[::-1]):
        row = decision_map(r, n_boot=100).iloc[0]
        assert (row.best, row.runner_up, row.margin, row.tie) == ("alpha", "zeta", 0.0, True)
    single = decision_map(rows[rows.method == "zeta"], n_boot=100).iloc[0]
    assert single.best == "zeta" and single.runner_up == "" and np.isnan(single.margin) and not single.tie


# --------------------------------------------------------------------------- monotone_violations


def test_monotone_violations_finds_an_injected_drop_only():
    columns = ["material", "method", "x_low", "x_high", "f1_mean_low", "f1_mean_high", "f1_lo_low", "f1_hi_high"]
    clean = monotone_violations(curve_table(curve_rows(), x="dose_e_per_A2", n_boot=300))
    assert clean.empty and list(clean.columns) == columns
    curve = curve_table(curve_rows(drop=("Si", "b", 10000.0)), x="dose_e_per_A2", n_boot=300)
    bad = monotone_violations(curve)
    assert len(bad) == 1 and list(bad.columns) == columns
    row = bad.iloc[0]
    assert (row.material, row.method, row.x_low, row.x_high) == ("Si", "b", 1000.0, 10000.0)
    assert row.f1_mean_low == pytest.approx(0.7, abs=0.02) and row.f1_mean_high == pytest.approx(0.47, abs=0.02)
    # a dip within the intervals is not a violation
    curve.loc[(curve.material == "MoS2") & (curve.method == "a") & (curve.dose_e_per_A2 == 1000.0),
              ["f1_mean", "f1_lo", "f1_hi"]] = [0.45, 0.40, 0.52]
    assert len(monotone_violations(curve)) == 1


def test_interval_text():
    assert interval_text(0.98104, 0.9751, 0.9862) == "0.981 [0.975, 0.986]"
    assert interval_text(1234.5, 1000.0, np.inf, decimals=0) == "1234 [1000, ∞]"
    assert interval_text(np.nan, 0.1, 0.2) == "n/a"
    assert interval_text(0.5, np.nan, np.nan, 2) == "0.50"


# --------------------------------------------------------------------------- plots


def sweep_rows(materials):
    def f1(material, method, dose, k):
        return 1.0 / (1.0 + np.exp(-(np.log(dose) - np.log(300.0)) - (0.5 if method == "a" else 0.0)))

    cells = [(m, meth, d, df) for m in materials for meth in ("a", "b", "c")
             for d in np.geomspace(10, 1e5, 7) for df in (-10.0, 0.0, 10.0)]
    return frames(cells, 4, f1, noise=0.02, seed=1)


@pytest.mark.parametrize("materials", [("MoS2",), ("MoS2", "Si", "SrTiO3")])
def test_plots_write_png_for_one_and_many_panels(tmp_path, materials):
    rows = sweep_rows(materials)
    curve = curve_table(rows, x="dose_e_per_A2", n_boot=100)
    plot_sweep_curves(curve, [tmp_path / "curves.png"], x="dose_e_per_A2", xlabel="dose (e/Å²)", ylabel="F1",
                      logx=True, title="F1 vs dose")
    table = decision_map(rows, n_boot=100, spreads={"a": 0.02})
    table.loc[table.index[0], "runner_up"] = ""  # a cell with one method
    table.loc[table.index[0], ["margin", "tie"]] = [np.nan, False]
    assert table["tie"].any() and (~table["tie"]).any()
    plot_decision_map(table, [tmp_path / "map.png"], x="dose_e_per_A2", y="defocus_nm", xlabel="dose (e/Å²)",
                      ylabel="defocus (nm)", title="best F1")
    for name in ("curves.png", "map.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError, match="more than one row"):
        plot_sweep_curves(curve_table(rows, x="dose_e_per_A2", by=("material", "method", "defocus_nm"), n_boot=10),
                          [tmp_path / "bad.png"], x="dose_e_per_A2", xlabel="dose", ylabel="F1")


def test_method_colors_are_fixed_by_name():
    a = method_colors(["b", "a", "c"])
    assert a == method_colors(["c", "a", "b", "a"]) and len(set(a.values())) == 3
    many = method_colors([f"m{k}" for k in range(11)])
    assert len(set(many.values())) == 11


def test_decision_map_equal_means_count_and_cost_order():
    cells = [("MoS2", m, 1e4, 0.0) for m in ("zeta", "alpha", "mid", "low")]
    perfect = {"zeta": 1.0, "alpha": 1.0, "mid": 1.0, "low": 0.9}
    rows = frames(cells, 3, lambda material, method, dose, k: perfect[method])
    by_name = decision_map(rows, n_boot=100).iloc[0]
    assert (by_name.best, by_name.runner_up, by_name.n_at_best, bool(by_name.tie)) == ("alpha", "mid", 3, True)
    by_cost = decision_map(rows, n_boot=100, cost={"zeta": 1.0, "alpha": 5.0, "mid": 2.0}).iloc[0]
    assert (by_cost.best, by_cost.runner_up) == ("zeta", "mid")  # equal F1: the cheaper first
