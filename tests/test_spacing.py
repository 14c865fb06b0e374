import numpy as np
import pytest
from scipy import ndimage

from atomloc.core.errors import AtomlocInputError
from atomloc.locate.spacing import autocorrelation, estimate_spacing
from atomloc.testing import mos2_frame, square_lattice


@pytest.mark.parametrize("spacing_px", [4.0, 5.5, 8.0, 12.0, 17.0, 25.0, 33.0, 40.0])
def test_mos2_spacing_within_5_percent(spacing_px):
    shape = (max(128, int(7 * spacing_px)),) * 2
    series = mos2_frame(spacing_px=spacing_px, shape=shape, electrons_per_px=400.0, seed=int(spacing_px))
    est = estimate_spacing(series.frames[0])
    assert est == pytest.approx(spacing_px, rel=0.05)


@pytest.mark.parametrize("spacing_px", [4.0, 10.0, 22.0, 40.0])
def test_square_lattice_spacing_within_5_percent(spacing_px):
    img, _ = square_lattice(spacing_px, shape=(max(128, int(7 * spacing_px)),) * 2, seed=3)
    assert estimate_spacing(img) == pytest.approx(spacing_px, rel=0.05)


def test_spacing_ignores_linear_ramp():
    img, _ = square_lattice(10.0, seed=4)
    yy, xx = np.indices(img.shape)
    assert estimate_spacing(img + 2.0 * xx + 1.0 * yy) == pytest.approx(10.0, rel=0.05)


@pytest.mark.parametrize("spacing_px, sigma_px", [(9.0, 15.0), (14.0, 30.0)])
def test_spacing_under_a_contamination_background(spacing_px, sigma_px):
    # amorphous contamination a few spacings wide, as strong as the lattice: its zero-lag peak
    # swallows the neighbour repeat and a longer one (24 and 38 px here) is found first; the
    # refinement on the image high-passed at half that repeat finds the lattice again
    series = mos2_frame(spacing_px=spacing_px, shape=(384, 384), electrons_per_px=400.0, seed=1)
    img = series.frames[0].astype(float)
    bump = ndimage.gaussian_filter(np.random.default_rng(2).standard_normal(img.shape), sigma_px)
    img += bump * img.std() / bump.std()
    assert estimate_spacing(img, refine=False) > 2 * spacing_px
    assert estimate_spacing(img) == pytest.approx(spacing_px, rel=0.05)


def test_autocorrelation_is_one_at_zero_lag_and_symmetric():
    img, _ = square_lattice(8.0, shape=(64, 80))
    acf = autocorrelation(img)
    assert acf.shape == img.shape
    assert acf[32, 40] == pytest.approx(1.0)
    assert acf[32 + 3, 40 + 5] == pytest.approx(acf[32 - 3, 40 - 5], rel=1e-6)  # a float32 FFT


def test_bounded_lag_window_is_the_centre_of_the_full_autocorrelation():
    img, _ = square_lattice(8.0, shape=(90, 120), seed=1)
    full = autocorrelation(img)
    window = autocorrelation(img, max_lag_px=20)
    assert window.shape == (40, 40) and window[20, 20] == pytest.approx(1.0)
    np.testing.assert_allclose(window, full[45 - 20:45 + 20, 60 - 20:60 + 20], atol=1e-6)


def test_spacing_of_a_large_image_on_the_bounded_window():
    # 1536 x 1536: lags beyond 512 px are never computed; the estimate is that of the whole image
    img, _ = square_lattice(7.0, shape=(1536, 1536), seed=5)
    assert estimate_spacing(img) == pytest.approx(7.0, abs=0.05)
    rng = np.random.default_rng(1)
    with pytest.raises(AtomlocInputError, match="no lattice found .no repeat up to 341 px"):
        estimate_spacing(rng.poisson(20.0, (1536, 1536)).astype(float), name="noise")


def test_image_without_columns_fails_with_message():
    ramp = np.ones((64, 64)) + 1e-3 * np.arange(64)  # a plane: nothing repeats
    with pytest.raises(AtomlocInputError, match="flat.*spacing"):
        estimate_spacing(ramp, name="flat")


def test_bad_background_sigma_names_it():
    img, _ = square_lattice(10.0, seed=4)
    with pytest.raises(AtomlocInputError, match="lattice.*background_sigma_px"):
        estimate_spacing(img, background_sigma_px=-1.0, name="lattice")
