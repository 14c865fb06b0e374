"""Per-column intensities, sublattices and ``columns="heavy"`` (issue 17)."""

import numpy as np
import pandas as pd
import pytest

from atomloc.analysis.metrics import match_points, score_detections
from atomloc.cli import main
from atomloc.core.errors import AtomlocInputError
from atomloc.locate import locate
from atomloc.locate.columns import column_intensities, keep_columns, sublattice_labels
from atomloc.simulate import SeriesSpec, simulate_series
from atomloc.simulate.render import render_columns


def test_intensity_is_the_integrated_column_above_the_background():
    # Two columns of known integral (amplitude x 2 pi sigma^2) on a constant background of 7.
    x, y, amp, sigma = np.array([30.0, 70.3]), np.array([40.0, 41.6]), np.array([50.0, 20.0]), 2.0
    image = 7.0 + render_columns((80, 100), x, y, amp, sigma)
    got = column_intensities(image, x, y, spacing_px=20.0, radius_px=8.0)
    np.testing.assert_allclose(got, amp * 2 * np.pi * sigma ** 2, rtol=0.02)


def test_sublattice_split_of_a_two_level_histogram_orders_by_brightness():
    rng = np.random.default_rng(0)
    bright, dim = rng.normal(100.0, 6.0, 150), rng.normal(40.0, 6.0, 250)
    labels = sublattice_labels(np.concatenate([bright, dim]))
    assert (labels[:150] == 0).all() and (labels[150:] == 1).all()


def test_unimodal_histogram_and_a_few_outliers_are_one_sublattice():
    rng = np.random.default_rng(1)
    assert (sublattice_labels(rng.normal(100.0, 10.0, 400)) == 0).all()
    # A broad thickness-like ramp of intensities is no sublattice either.
    assert (sublattice_labels(np.linspace(50.0, 150.0, 400)) == 0).all()
    with_outliers = np.concatenate([rng.normal(100.0, 5.0, 400), [400.0, 410.0, 395.0]])
    assert (sublattice_labels(with_outliers) == 0).all()


def test_keep_columns_checks_its_choice():
    table = pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0], "sublattice": [0, 1]})
    assert len(keep_columns(table, "heavy")) == 1 and len(keep_columns(table, "all")) == 2
    with pytest.raises(AtomlocInputError, match="img: columns='light'"):
        keep_columns(table, "light", "img")


@pytest.mark.parametrize("material, pixel_size_pm", [("MoS2", 20.0), ("ReS2", 14.0)])
def test_heavy_columns_are_the_metal_columns(material, pixel_size_pm):
    spec = SeriesSpec(material=material, shape_px=(256, 256), pixel_size_pm=pixel_size_pm, n_frames=1,
                      rotation_deg=11.0, dose_e_per_A2=(1e4, 1e4), defocus_nm=(0.0, 0.0), astigmatism_nm=0.0,
                      drift_px_per_frame=0.0, seed=3)
    series = simulate_series(spec)
    frame = series.frames[0]
    metal = series.truth.positions(0, kinds=("metal",))
    found = locate(frame, "gaussfit")
    heavy = locate(frame, "gaussfit", columns="heavy")
    assert score_detections(heavy[["x", "y"]].to_numpy(), metal, frame.shape).f1 >= 0.98
    # Sublattice labels agree with the truth's kinds (metal -> 0) for >= 98 % of the matched columns.
    truth = series.truth.positions(0)
    is_metal = series.truth.kind == "metal"
    pairs = match_points(found[["x", "y"]].to_numpy(), truth, 0.3 * 9.0)
    pred_i, ref_i = pairs[:, 0], pairs[:, 1]
    agree = (found["sublattice"].to_numpy()[pred_i] == 0) == is_metal[ref_i]
    assert len(pred_i) > 100 and agree.mean() >= 0.98


def test_cli_columns_heavy_and_spacing(tmp_path, capsys):
    spec = SeriesSpec(material="MoS2", shape_px=(160, 160), pixel_size_pm=20.0, n_frames=1, rotation_deg=11.0,
                      dose_e_per_A2=(1e4, 1e4), defocus_nm=(0.0, 0.0), astigmatism_nm=0.0, drift_px_per_frame=0.0,
                      seed=4)
    image = tmp_path / "mos2.npy"
    np.save(image, simulate_series(spec).frames[0])
    out_all, out_heavy = tmp_path / "all.csv", tmp_path / "heavy.csv"
    assert main(["locate", str(image), "--spacing-px", "9.1", "--out", str(out_all)]) == 0
    assert main(["locate", str(image), "--spacing-px", "9.1", "--columns", "heavy", "--out", str(out_heavy)]) == 0
    every, heavy = pd.read_csv(out_all), pd.read_csv(out_heavy)
    assert {"intensity", "sublattice"} <= set(every.columns)
    assert len(heavy) == (every["sublattice"] == 0).sum() and 0.4 < len(heavy) / len(every) < 0.6
