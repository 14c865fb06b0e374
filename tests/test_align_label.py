import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from atomloc.analysis.metrics import score_detections
from atomloc.core.errors import AtomlocInputError
from atomloc.io.training import read_training_pairs, write_training_pairs
from atomloc.series.align import (
    align_series,
    apply_drift,
    estimate_drift,
    estimate_row_shifts,
    frame_quality,
    transfer_error_px,
    transfer_positions,
    warp_to_reference,
)
from atomloc.series.label import label_reference_frame, training_positions, transfer_labels
from atomloc.simulate import SeriesSpec, simulate_series


def test_quality_increases_with_dose():
    q = [frame_quality(simulate_series(SeriesSpec(shape_px=(96, 96), n_frames=1, dose_e_per_A2=(d, d),
                                                  seed=1)).frames[0]) for d in (3e3, 3e4, 3e5)]
    assert q[0] < q[1] < q[2]


def test_alignment_recovers_drift_and_labels_transfer():
    spec = SeriesSpec(shape_px=(128, 128), n_frames=5, dose_e_per_A2=(1e4, 2e5), drift_px_per_frame=2.5, seed=4,
                      scan_creep_px=0.0, scan_wobble_px=0.0)
    s = simulate_series(spec)
    a = align_series(s.frames)
    ref = a["reference_index"]
    assert ref == int(np.argmax(s.dose_e_per_A2))
    true = s.drift_px - s.drift_px[ref]
    # On a perfect crystal a lattice translation matches as well as the true shift (see estimate_drift):
    # the error must be a lattice vector (MoS2, a = 3.16 A = 15.8 px, unrotated) to within 0.15 px
    # (cross-correlation refined to 1/20 px, biased by the content entering and leaving the frame).
    a1, a2 = np.array([15.8, 0.0]), np.array([-7.9, 15.8 * np.sqrt(3) / 2])
    lattice = np.array([i * a1 + j * a2 for i in range(-2, 3) for j in range(-2, 3)])
    err = a["drift_px"] - true
    residual = np.min(np.hypot(*(err[:, None, :] - lattice[None, :, :]).transpose(2, 0, 1)), axis=1)
    assert residual.max() < 0.15
    assert (np.hypot(*err.T) < 0.15).sum() >= 3  # most frames need no lattice jump at all
    # the aligned frames line up with the reference
    centre = slice(20, -20)
    err_raw = np.abs(s.frames[0] - s.frames[ref])[centre, centre].mean()
    err_aligned = np.abs(a["aligned"][0] - a["aligned"][ref])[centre, centre].mean()
    assert err_aligned < err_raw
    labels = label_reference_frame(s.frames[ref])
    moved = transfer_labels(labels, a["drift_px"])
    assert set(moved.frame) == set(range(5))
    for k in range(5):
        score = score_detections(moved.loc[moved.frame == k, ["x", "y"]].to_numpy(), s.truth.positions(k),
                                 (128, 128), pixel_size_pm=spec.pixel_size_pm)
        assert score.f1 >= 0.97
        assert score.rmse_px < 0.2


def test_apply_drift_moves_content_back():
    img = np.zeros((1, 32, 32))
    img[0, 10, 12] = 1.0
    out = apply_drift(img, np.array([[2.0, -3.0]]), order=1)
    assert np.unravel_index(out[0].argmax(), out[0].shape) == (13, 10)


def test_transfer_labels_adds_drift():
    labels = pd.DataFrame({"x": [1.0], "y": [2.0]})
    out = transfer_labels(labels, np.array([[0.0, 0.0], [0.5, -1.0]]))
    assert out.to_dict("list") == {"frame": [0, 1], "transfer": ["rigid", "rigid"], "x": [1.0, 1.5], "y": [2.0, 1.0]}
    rows = np.zeros((2, 8, 2))
    rows[1, :, 0] = np.linspace(0, 0.7, 8)  # dx grows down the frame
    out = transfer_labels(labels, np.array([[0.0, 0.0], [0.5, -1.0]]), rows, transfer="nonrigid")
    assert out.loc[1, "x"] == 1.5 + 0.2 and out.loc[1, "y"] == 1.0 and set(out.transfer) == {"nonrigid"}


def test_rigid_shift_recovery_noise_free():
    spec = SeriesSpec(shape_px=(128, 128), n_frames=4, dose_e_per_A2=(1e10, 1e10), read_noise_counts=0.0,
                      drift_px_per_frame=2.0, scan_creep_px=0.0, scan_wobble_px=0.0, seed=9)
    s = simulate_series(spec)
    drift = estimate_drift(s.frames, 0, upsample_factor=100)
    assert np.abs(drift - (s.drift_px - s.drift_px[0])).max() <= 0.05


def test_row_shifts_recover_slow_scan_distortion():
    spec = SeriesSpec(shape_px=(192, 192), n_frames=2, dose_e_per_A2=(2e5, 2e5), scan_creep_px=2.0,
                      scan_wobble_px=0.3, rotation_deg=21.0, seed=12)
    s = simulate_series(spec)
    drift = np.round(s.drift_px[1] - s.drift_px[0])  # a rigid step that leaves a residual
    est = estimate_row_shifts(s.frames[0], s.frames[1], drift)
    # the true residual of frame 1 after the rigid shift, per reference row (distortions vary slowly)
    true = s.arrays["scan_shift_px"][1] - s.arrays["scan_shift_px"][0] + (s.drift_px[1] - s.drift_px[0]) - drift
    inner = slice(16, -16)
    assert np.ptp(true[inner], axis=0).max() > 1.0  # there is something to find
    assert np.sqrt(np.mean((est - true)[inner] ** 2)) < 0.15


def test_nonrigid_transfer_at_least_halves_the_rigid_error():
    spec = SeriesSpec(shape_px=(192, 192), n_frames=4, rotation_deg=8.0, seed=3)
    s = simulate_series(spec)
    errors = {}
    for alignment in ("rigid", "nonrigid"):
        a = align_series(s.frames, alignment=alignment)
        errors[alignment] = transfer_error_px(s.truth.x, s.truth.y, a["reference_index"], a["drift_px"],
                                              a["row_shift_px"], (192, 192), margin_px=5)
    others = errors["rigid"] > 0
    assert np.all(errors["nonrigid"][others] <= 0.5 * errors["rigid"][others])
    assert errors["rigid"][others].max() > 0.3


def test_warp_to_reference_undoes_drift_and_row_shifts():
    rng = np.random.default_rng(0)
    ref = ndimage.gaussian_filter(rng.random((64, 64)), 2.0)
    rows = np.column_stack([np.linspace(-1, 1, 64), np.linspace(0.5, -0.5, 64)])
    # frame(p + drift + rows(p.y)) = ref(p)  <=>  ref(p) = warp(frame)(p)
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    x_src, y_src = transfer_positions(xx.ravel(), yy.ravel(), (-1.5, 2.0), -rows)
    frame = ndimage.map_coordinates(ref, [y_src, x_src], order=3, mode="nearest").reshape(64, 64)
    back = warp_to_reference(frame, (1.5, -2.0), rows)
    inner = slice(8, -8)
    assert np.abs(back - ref)[inner, inner].max() < 0.05 * np.ptp(ref)


def test_training_pairs_roundtrip_and_sources(tmp_path):
    s = simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=2, seed=1))
    labels = transfer_labels(pd.DataFrame({"x": [10.0, 20.0], "y": [5.0, 30.0]}), s.drift_px)
    for source in ("reference", "truth"):
        pos = training_positions(s, labels, source)
        write_training_pairs(tmp_path / f"{source}.h5", s.frames, pos, source, {"pixel_size_pm": 20.0})
        frames, per_frame, attrs = read_training_pairs(tmp_path / f"{source}.h5")
        assert np.array_equal(frames, s.frames) and attrs["label_source"] == source
        assert len(per_frame) == 2
    assert np.allclose(per_frame[1], s.truth.positions(1))
    with pytest.raises(AtomlocInputError, match="label_source"):
        write_training_pairs(tmp_path / "bad.h5", s.frames, pos, "guess")
    assert not (tmp_path / "bad.h5").exists()


def test_label_errors_in_pm_with_a_missing_label():
    import pandas as pd

    from atomloc.analysis.evaluate import label_errors_pm
    from atomloc.io.series import Series, Truth

    x = np.array([[10.0, 20.0, 30.0, 40.0]])
    truth = Truth(x, np.full_like(x, 5.0), np.array(["Mo"] * 4), np.array(["metal"] * 4))
    series = Series(np.zeros((1, 16, 48)), {"pixel_size_pm": 20.0}, truth=truth)
    labels = pd.DataFrame({"frame": [0, 0, 0], "x": [10.3, 20.0, 41.0], "y": [5.4, 5.0, 5.0]})
    truth, err = label_errors_pm(series, labels, 0)
    assert np.array_equal(truth, np.column_stack([x[0], np.full(4, 5.0)]))
    assert np.allclose(err[[0, 1, 3]], [0.5 * 20.0, 0.0, 20.0])
    assert np.isnan(err[2])  # nearest label 10 px away: beyond half the 10 px spacing
    assert np.isnan(label_errors_pm(series, labels.iloc[:0], 0)[1]).all()
