import numpy as np
import pandas as pd

from atomloc.align import align_series, apply_drift, frame_quality
from atomloc.evaluate import truth_positions
from atomloc.label import label_reference_frame, transfer_labels
from atomloc.metrics import score_detections
from atomloc.simulate import SeriesSpec, simulate_series


def test_quality_increases_with_dose():
    q = [frame_quality(simulate_series(SeriesSpec(shape_px=(96, 96), n_frames=1, dose_e_per_A2=(d, d),
                                                  seed=1))["frames"][0]) for d in (3e3, 3e4, 3e5)]
    assert q[0] < q[1] < q[2]


def test_alignment_recovers_drift_and_labels_transfer():
    spec = SeriesSpec(shape_px=(128, 128), n_frames=5, dose_e_per_A2=(1e4, 2e5), drift_px_per_frame=2.5, seed=4)
    s = simulate_series(spec)
    a = align_series(s["frames"])
    ref = a["reference_index"]
    assert ref == int(np.argmax(s["dose_e_per_A2"]))
    true = s["drift_px"] - s["drift_px"][ref]
    assert np.abs(a["drift_px"] - true).max() < 0.1
    # the aligned frames line up with the reference
    centre = slice(20, -20)
    err_raw = np.abs(s["frames"][0] - s["frames"][ref])[centre, centre].mean()
    err_aligned = np.abs(a["aligned"][0] - a["aligned"][ref])[centre, centre].mean()
    assert err_aligned < err_raw
    labels = label_reference_frame(s["frames"][ref])
    moved = transfer_labels(labels, a["drift_px"])
    assert set(moved.frame) == set(range(5))
    for k in range(5):
        score = score_detections(moved.loc[moved.frame == k, ["x", "y"]].to_numpy(), truth_positions(s, k),
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
    assert out.to_dict("list") == {"frame": [0, 1], "x": [1.0, 1.5], "y": [2.0, 1.0]}
