import numpy as np
import pytest

from atomloc.errors import AtomlocInputError
from atomloc.methods import available_methods, get_method, locate
from atomloc.metrics import score_detections

from conftest import mos2_frame, square_lattice, truth_xy

METHODS = ["threshold_centroid", "log", "peaks_gaussfit"]
# RMSE bound (pm) at high dose on 20 pm pixels: blob_log returns whole-pixel positions.
RMSE_PM_MAX = {"threshold_centroid": 6.0, "log": 12.0, "peaks_gaussfit": 2.5}


def test_registry_lists_methods_with_defaults():
    names = available_methods()
    for m in METHODS:
        assert m in names
        assert get_method(m).defaults["spacing_px"] == "auto"


@pytest.mark.parametrize("method", METHODS)
def test_high_dose_mos2_f1_and_rmse(method, mos2_high_dose):
    s = mos2_high_dose
    img = s["frames"][0]
    pos = locate(img, method)
    assert list(pos.columns[:2]) == ["x", "y"]
    score = score_detections(pos[["x", "y"]].to_numpy(), truth_xy(s), img.shape,
                             pixel_size_pm=s["attrs"]["pixel_size_pm"])
    assert score.f1 >= 0.98
    assert score.rmse_pm <= RMSE_PM_MAX[method]


@pytest.mark.parametrize("spacing_px", [4.5, 12.0, 36.0])
def test_peaks_gaussfit_needs_no_tuning_across_spacings(spacing_px):
    img, truth = square_lattice(spacing_px, shape=(max(128, int(7 * spacing_px)),) * 2, seed=5)
    pos = locate(img, "peaks_gaussfit")
    score = score_detections(pos[["x", "y"]].to_numpy(), truth, img.shape)
    assert score.f1 >= 0.98
    assert score.rmse_px < 0.1 * spacing_px


def test_gaussfit_beats_threshold_centroid_in_rmse():
    s = mos2_frame(electrons_per_px=600.0, seed=3)
    img, ref = s["frames"][0], truth_xy(s)
    rmse = {m: score_detections(locate(img, m)[["x", "y"]].to_numpy(), ref, img.shape).rmse_px
            for m in ("threshold_centroid", "peaks_gaussfit")}
    assert rmse["peaks_gaussfit"] < rmse["threshold_centroid"]


def test_unknown_method_and_parameter_are_named():
    img = np.random.default_rng(0).random((32, 32))
    with pytest.raises(AtomlocInputError, match="nosuch"):
        locate(img, "nosuch")
    with pytest.raises(AtomlocInputError, match="bogus"):
        locate(img, "log", bogus=1)


@pytest.mark.parametrize("bad", [np.full((32, 32), 3.0), np.full((32, 32), np.nan), np.zeros((4, 4, 4))])
def test_bad_images_rejected(bad):
    with pytest.raises(AtomlocInputError):
        locate(bad, "log", spacing_px=5.0)


def test_explicit_spacing_is_used():
    img, truth = square_lattice(10.0, seed=1)
    pos = locate(img, "peaks_gaussfit", spacing_px=10.0)
    assert score_detections(pos[["x", "y"]].to_numpy(), truth, img.shape).f1 >= 0.98
    with pytest.raises(AtomlocInputError, match="spacing_px"):
        locate(img, "peaks_gaussfit", spacing_px=-1)
