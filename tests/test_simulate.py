import numpy as np
import pytest

from atomloc.errors import AtomlocInputError
from atomloc.refine import fit_gaussians
from atomloc.simulate import SeriesSpec, render_columns, simulate_series
from atomloc.structures import build_atoms, project_columns


def test_render_columns_peak_at_subpixel_position():
    img = render_columns((32, 32), np.array([10.3]), np.array([20.7]), np.array([5.0]), 1.5)
    yy, xx = np.indices(img.shape)
    cx = (img * xx).sum() / img.sum()
    cy = (img * yy).sum() / img.sum()
    assert (cx, cy) == pytest.approx((10.3, 20.7), abs=1e-6)
    assert img.max() == pytest.approx(5.0 * np.exp(-0.5 * (0.3 ** 2 + 0.3 ** 2) / 1.5 ** 2), rel=1e-9)


def test_mos2_projection_has_metal_and_s2_columns():
    cell = project_columns(build_atoms("MoS2"))
    assert sorted(cell.element.tolist()) == ["Mo", "S2"]
    w = dict(zip(cell.element, cell.weights(1.5)))
    assert w["Mo"] == pytest.approx(42 ** 1.5)
    assert w["S2"] == pytest.approx(2 * 16 ** 1.5)
    d = np.hypot(*(cell.xy_A[0] - cell.xy_A[1]))
    assert d == pytest.approx(3.16 / np.sqrt(3), rel=1e-6)


def test_same_spec_same_bytes_and_truth_under_drift():
    spec = SeriesSpec(shape_px=(64, 64), n_frames=3, seed=5)
    a, b = simulate_series(spec), simulate_series(spec)
    assert np.array_equal(a["frames"], b["frames"])
    assert a["frames"].dtype == np.float32 and a["frames"].shape == (3, 64, 64)
    # without scan distortion, truth moves with the rigid drift exactly
    rigid = simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=3, seed=5, scan_creep_px=0.0,
                                       scan_wobble_px=0.0))
    moved = rigid["truth"]["x"][2] - rigid["truth"]["x"][0]
    assert np.allclose(moved, rigid["drift_px"][2, 0])
    assert not np.array_equal(simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=3, seed=6))["frames"],
                              a["frames"])


def test_truth_sits_on_image_maxima_at_high_dose():
    spec = SeriesSpec(shape_px=(96, 96), n_frames=1, dose_e_per_A2=(1e7, 1e7), read_noise_counts=0, seed=2)
    s = simulate_series(spec)
    img = s["frames"][0]
    t = s["truth"]
    metal = (t["kind"] == "metal") & (t["x"][0] > 3) & (t["x"][0] < 92) & (t["y"][0] > 3) & (t["y"][0] < 92)
    xs, ys = np.rint(t["x"][0][metal]).astype(int), np.rint(t["y"][0][metal]).astype(int)
    for x, y in zip(xs, ys):
        patch = img[y - 1:y + 2, x - 1:x + 2]
        assert patch.max() == img[y, x] or abs(np.unravel_index(patch.argmax(), patch.shape)[0] - 1) <= 1


def test_mean_counts_follow_dose():
    lo = simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=1, dose_e_per_A2=(1e4, 1e4), seed=1))
    hi = simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=1, dose_e_per_A2=(1e5, 1e5), seed=1))
    assert hi["frames"].mean() / lo["frames"].mean() == pytest.approx(10.0, rel=0.05)


@pytest.mark.parametrize("key,value", [("n_frames", 0), ("dose_e_per_A2", (5.0, 1.0)), ("material", "Unobtainium"),
                                       ("collection_fraction", 2.0), ("shape_px", (8, 8))])
def test_bad_spec_names_the_key(key, value):
    with pytest.raises(AtomlocInputError, match=key):
        SeriesSpec.from_mapping({key: value}, name="datasets.x")


def test_unknown_key_rejected():
    with pytest.raises(AtomlocInputError, match="unknown"):
        SeriesSpec.from_mapping({"dose": 1}, name="datasets.x")


def test_scan_distortion_moves_truth_and_image_together():
    spec = SeriesSpec(material="MoS2", shape_px=(128, 128), n_frames=2, dose_e_per_A2=(1e9, 1e9),
                      read_noise_counts=0.0, scan_creep_px=3.0, scan_wobble_px=0.8, seed=3)
    s = simulate_series(spec)
    shift = s["scan_shift_px"]
    assert shift.shape == (2, 128, 2)
    assert np.allclose(shift.mean(axis=1), 0.0, atol=1e-12)
    assert np.ptp(shift[:, :, 0], axis=1).max() > 1.0  # the rows really move
    for k in range(2):
        x, y = s["truth"]["x"][k], s["truth"]["y"][k]
        inside = (x > 8) & (x < 120) & (y > 8) & (y < 120)
        fit = fit_gaussians(s["frames"][k], x[inside], y[inside], radius_px=3.0, sigma_px=2.0)
        assert fit.ok.all()
        err = np.hypot(fit.x - x[inside], fit.y - y[inside])
        assert np.percentile(err, 95) < 0.1  # a shift that varies along a column tilts it slightly


def test_distorted_positions_inverts_row_shifts():
    from atomloc.simulate import distorted_positions

    rows = np.arange(100.0)
    shift = np.column_stack([0.02 * rows - 1.0, 1.5 * np.sin(rows / 15.0)])
    x, y = distorted_positions(np.array([10.0, 50.0]), np.array([20.0, 70.0]), shift)
    # the row found satisfies i - dy(i) = y, and x moved by dx of that row
    assert np.allclose(y - np.interp(y, rows, shift[:, 1]), [20.0, 70.0], atol=1e-9)
    assert np.allclose(x, [10.0, 50.0] + np.interp(y, rows, shift[:, 0]), atol=1e-12)
