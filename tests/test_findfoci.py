import numpy as np
import pytest

from atomloc.analysis.metrics import score_detections
from atomloc.core.errors import AtomlocInputError
from atomloc.locate.findfoci import background_level, find_foci, segment_foci
from atomloc.simulate.render import render_columns
from atomloc.testing import square_lattice


def two_peaks(separation_px, amp2=1.0, sigma_px=2.0, shape=(40, 60)):
    """Two Gaussians on a zero background, centred on row 20 at x = 30 -+ separation/2."""
    x = np.array([30 - separation_px / 2, 30 + separation_px / 2])
    return render_columns(shape, x, np.array([20.0, 20.0]), np.array([1.0, amp2]), sigma_px), x


def test_two_separated_peaks_found_at_their_maxima():
    img, x = two_peaks(12.0)
    foci = find_foci(img, background_param=0.05, min_size_px=5, centre_method="max")
    assert len(foci) == 2
    assert np.allclose(np.sort(foci.x), x) and np.allclose(foci.y, 20)


def test_saddle_between_two_equal_peaks_is_the_midpoint_value():
    sep, sigma = 6.0, 2.0
    img, _ = two_peaks(sep, sigma_px=sigma)  # centres at x = 27 and 33; pixel x = 30 is the midpoint
    foci = find_foci(img, background_param=0.01, peak_param=0.0, min_size_px=1)
    assert len(foci) == 2
    midpoint = 2 * np.exp(-0.5 * (sep / 2 / sigma) ** 2)
    # the peak visited first (lower rank) saddles to the other; the other has none above the background
    assert sorted(foci.saddle) == pytest.approx([0.01, midpoint], rel=1e-9)


def test_shallow_dip_is_merged_and_deep_dip_is_not():
    img, _ = two_peaks(5.0, sigma_px=2.0)  # dip between the peaks is shallow
    peak = img.max()
    strict = find_foci(img, background_param=0.01, peak_method="relative_above_background",
                       peak_param=0.5, min_size_px=1)
    lenient = find_foci(img, background_param=0.01, peak_method="relative_above_background",
                        peak_param=0.01, min_size_px=1)
    assert len(strict) == 1 and len(lenient) == 2
    absolute = find_foci(img, background_param=0.01, peak_method="absolute", peak_param=0.5 * peak, min_size_px=1)
    assert len(absolute) == 1


def test_small_peaks_are_merged_by_min_size():
    img, _ = two_peaks(14.0, amp2=1.0, sigma_px=2.0)
    img[5, 5] = 0.5  # a single hot pixel above the background
    found = find_foci(img, background_param=0.05, peak_param=0.1, min_size_px=1)
    assert len(found) == 3
    found = find_foci(img, background_param=0.05, peak_param=0.1, min_size_px=4)
    assert len(found) == 2


def test_background_excludes_low_peaks():
    img, x = two_peaks(14.0, amp2=0.2)
    assert len(find_foci(img, background_param=0.1, min_size_px=3)) == 2
    found = find_foci(img, background_param=0.3, min_size_px=3)
    assert len(found) == 1 and np.isclose(found.x[0], x[0])


def test_plateau_gives_one_maximum():
    img = np.zeros((20, 20))
    img[5:9, 5:12] = 1.0
    labels, peaks = segment_foci(img, background=0.5)
    assert len(peaks) == 1 and (labels > 0).sum() == 28


def test_fraction_of_peak_limits_expansion():
    img, _ = two_peaks(20.0, sigma_px=2.0)
    full, _ = segment_foci(img, background=0.01)
    half, _ = segment_foci(img, background=0.01, search_method="fraction_of_peak", search_param=0.5)
    assert 0 < (half > 0).sum() < (full > 0).sum()
    assert np.all(img[half > 0] > 0.5 * img.max() - 1e-12)


def test_centre_of_mass_is_subpixel():
    rng = np.random.default_rng(3)
    x0, y0 = 20.37, 18.81
    img = render_columns((40, 40), np.array([x0]), np.array([y0]), np.array([1.0]), 2.0)
    img += 0.001 * rng.standard_normal(img.shape)
    com = find_foci(img, background_param=0.05, min_size_px=3, centre_method="com")
    assert len(com) == 1
    assert abs(com.x[0] - x0) < 0.05 and abs(com.y[0] - y0) < 0.05


def test_lattice_found_completely():
    img, truth = square_lattice(10.0, seed=4)
    img = (img - img.min()) / np.ptp(img)
    foci = find_foci(img, blur_sigma_px=1.0, background_param=0.1, min_size_px=10, centre_method="com")
    score = score_detections(foci[["x", "y"]].to_numpy(), truth, img.shape)
    assert score.f1 >= 0.99 and score.rmse_px < 0.3


def test_background_methods():
    img = np.arange(100, dtype=float).reshape(10, 10)
    assert background_level(img, "absolute", 7.0) == 7.0
    assert background_level(img, "mean") == pytest.approx(49.5)
    assert background_level(img, "std_above_mean", 1.0) == pytest.approx(49.5 + img.std())
    assert 40 < background_level(img, "otsu") < 60


@pytest.mark.parametrize("kwargs, key", [({"background_method": "nope"}, "background_method"),
                                         ({"peak_method": "x"}, "peak_method"),
                                         ({"centre_method": "x"}, "centre_method"),
                                         ({"min_size_px": 0}, "min_size_px"),
                                         ({"blur_sigma_px": -1}, "blur_sigma_px"),
                                         ({"search_method": "fraction_of_peak", "search_param": 1.5}, "search_param")])
def test_bad_options_are_named(kwargs, key):
    img, _ = two_peaks(12.0)
    with pytest.raises(AtomlocInputError, match=key):
        find_foci(img, **kwargs)


def test_planted_lattice_found_exactly_despite_noise_spikes():
    rng = np.random.default_rng(8)
    spacing, sigma = 12.0, 2.0
    g = np.arange(8, 120, spacing)
    px, py = [a.ravel() + rng.uniform(-0.3, 0.3, a.size) for a in np.meshgrid(g, g)]
    img = render_columns((128, 128), px, py, np.full(px.size, 1.0), sigma)
    # single-pixel spikes: above the background, below the merge height (0.3 x peak above background)
    spikes = rng.integers(0, 128, size=(300, 2))
    img[spikes[:, 0], spikes[:, 1]] += rng.uniform(0.02, 0.2, 300)
    foci = find_foci(img, background_param=0.1, peak_param=0.3, min_size_px=5, centre_method="max")
    assert len(foci) == px.size
    d = np.hypot(*(foci[["x", "y"]].to_numpy()[:, None, :] - np.column_stack([px, py])[None, :, :]).T)
    assert np.all(d.min(axis=1) <= 1.0) and np.all(d.min(axis=0) <= 1.0)  # one maximum per planted peak
