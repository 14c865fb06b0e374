"""Controlled sweeps end to end in the library: the grid expansion, controlled per-frame conditions,
"don't care" scoring of faint sublattices, per-column Cramér–Rao bounds and the report tables."""

import numpy as np
import pandas as pd
import pytest

from atomloc.analysis.crlb import column_crlb_px, gaussian_position_crlb_px, image_crlb_px
from atomloc.analysis.evaluate import evaluate_series, frame_column_crlb
from atomloc.analysis.metrics import score_detections
from atomloc.analysis.sweeps import sweep_rows, sweep_tables
from atomloc.core.errors import AtomlocInputError
from atomloc.core.image import render_columns
from atomloc.locate.registry import locate_series
from atomloc.simulate import SeriesSpec, simulate_series
from atomloc.simulate.sweep import SweepSpec, expand_sweeps

SWEEP = {"name": "m", "material": "MoS2", "dose_e_per_A2": [300.0, 3000.0, 30000.0],
         "map_dose_e_per_A2": [3000.0, 30000.0], "defocus_nm": [0.0, 6.0], "pixel_size_pm": [20.0, 32.0],
         "reference_dose_e_per_A2": 30000.0, "seeds": 2, "simulation": {"shape_px": [64, 64], "seed": 3}}


def test_sweep_expands_to_one_series_per_pixel_size_with_the_grid_as_frames():
    specs, datasets = expand_sweeps([SWEEP])
    assert [d["name"] for d in datasets] == ["sweep_m_20pm", "sweep_m_32pm"]
    nominal, other = datasets
    # nominal: 3 in-focus doses + 2 map doses at 6 nm, 2 seeds each; other pixel size: the 2 map doses in focus
    assert nominal["n_frames"] == (3 + 2) * 2 and other["n_frames"] == 2 * 2
    assert nominal["frame_dose_e_per_A2"] == [300.0] * 2 + [3000.0] * 2 + [30000.0] * 2 + [3000.0] * 2 + [30000.0] * 2
    assert nominal["frame_defocus_nm"] == [0.0] * 6 + [6.0] * 4
    assert other["frame_defocus_nm"] == [0.0] * 4 and other["pixel_size_pm"] == 32.0
    assert nominal["split"] == "sweep" and nominal["astigmatism_nm"] == 0.0
    assert (nominal["seed"], other["seed"]) == (3, 4)  # independent noise per series
    frames = pd.DataFrame(specs[0].frame_table())
    assert len(frames) == 14 and frames.groupby(["dataset", "frame"]).size().max() == 1
    assert frames.loc[frames.dataset == "sweep_m_32pm", "nominal_pixel"].eq(False).all()


@pytest.mark.parametrize("change, message", [
    ({"defocus_nm": [3.0]}, "defocus_nm: must contain 0"),
    ({"dose_e_per_A2": [3000.0, 300.0]}, "dose_e_per_A2: must be at least two distinct doses"),
    ({"map_dose_e_per_A2": [500.0]}, "map_dose_e_per_A2: must be doses of dose_e_per_A2"),
    ({"reference_dose_e_per_A2": 300.0}, "reference_dose_e_per_A2: must be one of map_dose_e_per_A2"),
    ({"simulation": {"n_frames": 3}}, "simulation: n_frames are set by the sweep"),
    ({"material": "amorphous_C_atoms"}, "material: must be a crystal"),
    ({"simulation": {"shape_px": [8, 8]}}, "shape_px: must be two integers >= 16"),
])
def test_bad_sweeps_name_the_sweep_and_key(change, message):
    with pytest.raises(AtomlocInputError, match=message) as err:
        expand_sweeps([{**SWEEP, **change}])
    assert "sweeps[m]" in str(err.value) and "\n" not in str(err.value)


def test_repeated_sweep_names_are_refused():
    with pytest.raises(AtomlocInputError, match="sweep names must be unique"):
        expand_sweeps([SWEEP, SWEEP])


def test_controlled_frames_have_exactly_the_given_dose_and_defocus_and_keep_the_other_draws():
    base = SeriesSpec(material="MoS2", shape_px=(48, 48), n_frames=3, seed=5)
    controlled = SeriesSpec(material="MoS2", shape_px=(48, 48), n_frames=3, seed=5,
                            frame_dose_e_per_A2=(100.0, 1e4, 1e6), frame_defocus_nm=(0.0, 3.0, -3.0))
    a, b = simulate_series(base), simulate_series(controlled)
    np.testing.assert_array_equal(b.dose_e_per_A2, [100.0, 1e4, 1e6])
    np.testing.assert_array_equal(b.defocus_nm, [0.0, 3.0, -3.0])
    np.testing.assert_array_equal(a.truth.x, b.truth.x)  # drift and scan distortion: the same draws
    counts = b.frames.reshape(3, -1).sum(axis=1)
    assert 90 < counts[2] / counts[1] < 110  # 100 x the dose, background and all: counts scale with it
    with pytest.raises(AtomlocInputError, match="frame_dose_e_per_A2: must be empty or one value per frame"):
        SeriesSpec.from_mapping({"n_frames": 2, "frame_dose_e_per_A2": [1.0]})


def test_dont_care_columns_are_neither_hits_nor_false_alarms():
    metal = np.array([[20.0, 20.0], [40.0, 20.0], [20.0, 40.0], [40.0, 40.0]])
    faint = metal + [10.0, 10.0]
    pred = np.concatenate([metal[:3], faint[:2], [[5.0, 50.0]]])  # 3 metal hits, 2 on faint columns, 1 stray
    plain = score_detections(pred, metal, (64, 64), border_frac=0.0)
    assert (plain.tp, plain.fp, plain.fn) == (3, 3, 1)
    s = score_detections(pred, metal, (64, 64), border_frac=0.0, ignore=faint)
    assert (s.tp, s.fp, s.fn, s.n_pred) == (3, 1, 1, 4)
    assert s.precision == pytest.approx(3 / 4) and s.recall == pytest.approx(3 / 4)


def test_column_crlb_follows_each_columns_own_amplitude():
    xy = np.array([[16.0 + 16 * i, 16.0 + 16 * j] for i in range(3) for j in range(3)])
    amp = np.where(np.arange(9) % 2 == 0, 400.0, 100.0)
    image = render_columns((64, 64), xy[:, 0], xy[:, 1], amp, 2.0) + 10.0
    bounds = column_crlb_px(image, xy)
    expect_bright = gaussian_position_crlb_px(400.0, 2.0, 10.0)
    expect_faint = gaussian_position_crlb_px(100.0, 2.0, 10.0)
    np.testing.assert_allclose(bounds[amp == 400.0], expect_bright, rtol=0.05)
    np.testing.assert_allclose(bounds[amp == 100.0], expect_faint, rtol=0.05)
    assert expect_faint > 1.8 * expect_bright  # a faint column is located worse: its own bound says so
    # the frame's typical bound takes the median column (5 of the 9 are bright): blind to the faint ones
    assert image_crlb_px(image, xy) == pytest.approx(expect_bright, rel=0.05)


@pytest.fixture(scope="module")
def sweep_scores():
    sweep = {**SWEEP, "dose_e_per_A2": [300.0, 3000.0, 30000.0, 300000.0], "simulation": {"shape_px": [96, 96],
                                                                                         "seed": 3}}
    specs, datasets = expand_sweeps([sweep])
    tables = []
    for d in datasets:
        spec = SeriesSpec.from_mapping({k: v for k, v in d.items() if k not in ("name", "split", "truth_kinds")})
        series = simulate_series(spec, name=d["name"])
        crlb = frame_column_crlb(series)
        for method in ("gaussfit", "log"):
            pos, seconds = locate_series(series.frames, method, pixel_size_pm=series.pixel_size_pm)
            tables.append(evaluate_series(series, None, pos, seconds, column_crlb=crlb).assign(method=method))
    frames = pd.DataFrame(specs[0].frame_table())
    return sweep_rows(pd.concat(tables, ignore_index=True), frames, match_radius_frac=0.3)


def test_sweep_rows_carry_the_grid_and_only_truth(sweep_scores):
    rows = sweep_scores
    assert set(rows.reference) == {"truth"} and len(rows) == 2 * (12 + 4)
    spacing = rows.groupby("pixel_size_pm")["spacing_px"].first()
    assert spacing[20.0] == pytest.approx(9.09 * 1.0, rel=0.05)  # MoS2's Mo-S2 spacing 1.82 Å at 20 pm
    assert spacing[32.0] == pytest.approx(spacing[20.0] * 20 / 32, rel=0.02)


def test_sweep_tables_on_a_real_sweep(sweep_scores):
    t = sweep_tables(sweep_scores, reference_doses={"MoS2": 30000.0}, n_boot=200)
    curves = t["curves"]
    dose = curves[(curves.axis == "dose") & (curves.method == "gaussfit")].set_index("x")
    assert list(dose.index) == [300.0, 3000.0, 30000.0, 300000.0]
    assert dose.loc[300000.0, "f1_mean"] >= 0.98 and dose.loc[300.0, "f1_mean"] < dose.loc[300000.0, "f1_mean"]
    assert (dose.f1_lo <= dose.f1_mean).all() and (dose.f1_mean <= dose.f1_hi).all()
    assert set(curves[curves.axis == "defocus"].x) == {0.0, 6.0}
    assert len(set(curves[curves.axis == "spacing"].x)) == 2
    detect = t["dose_to_detect"].set_index("method")
    assert detect.loc["gaussfit", "reached"] and 300.0 < detect.loc["gaussfit", "dose_to_detect_e_per_A2"] <= 3e5
    eff = t["efficiency"]
    pooled = eff[(eff.scope != "per dose") & (eff.method == "gaussfit")]
    # Gaussian fitting at >= 1e4 e/Å² in focus is near the bound of the same columns; LoG's whole pixels are not
    assert 0.8 < pooled.ratio_mean.iloc[0] < 1.6
    log_pooled = eff[(eff.scope != "per dose") & (eff.method == "log")].ratio_mean.iloc[0]
    assert log_pooled > pooled.ratio_mean.iloc[0]
    decision = t["decision_map"]
    assert set(decision.axis) == {"defocus", "spacing"}
    assert len(decision[decision.axis == "defocus"]) == 4 + 2  # 4 in-focus doses + 2 map doses at 6 nm
    assert len(decision[decision.axis == "spacing"]) == 4 + 2
    assert set(decision.best) <= {"gaussfit", "log"}
    assert decision.loc[decision.dose_e_per_A2 == 300000.0, "usable"].all()  # easy: someone reaches F1 0.95
    assert (decision.usable == (decision.best_mean >= 0.95)).all()
    assert t["monotone"].empty or set(t["monotone"].columns) >= {"material", "method"}
