import numpy as np
import pytest

from atomloc.core.image import render_columns
from atomloc.locate.refine import fit_gaussian_pairs, fit_gaussians


def test_fits_recover_position_sigma_amplitude_noise_free():
    rng = np.random.default_rng(0)
    x = rng.uniform(5, 95, 30)
    y = rng.uniform(5, 95, 30)
    keep = np.ones(30, bool)
    for i in range(30):  # keep columns well apart
        d = np.hypot(x - x[i], y - y[i])
        d[i] = 99
        keep[i] = d[keep].min() > 12 if i else True
    x, y = x[keep], y[keep]
    img = 3.0 + render_columns((100, 100), x, y, np.full(len(x), 50.0), 1.7)
    fit = fit_gaussians(img, np.rint(x), np.rint(y), radius_px=5, sigma_px=2.5)
    assert fit.ok.all()
    assert np.abs(fit.x - x).max() < 1e-3 and np.abs(fit.y - y).max() < 1e-3
    assert np.allclose(fit.sigma, 1.7, atol=1e-3)
    inner = (x > 6) & (x < 94) & (y > 6) & (y < 94)
    assert np.allclose(fit.amplitude[inner], 50.0, rtol=1e-3)
    assert np.allclose(fit.background[inner], 3.0, atol=0.05)


def test_fit_precision_with_poisson_noise_beats_peak_pixel():
    rng = np.random.default_rng(1)
    n = 200
    x = rng.uniform(10, 20, n)
    y = rng.uniform(10, 20, n)
    errs_fit, errs_pix = [], []
    for xi, yi in zip(x, y):
        img = rng.poisson(2.0 + render_columns((30, 30), np.array([xi]), np.array([yi]), np.array([80.0]), 1.6))
        fit = fit_gaussians(img, [np.rint(xi)], [np.rint(yi)], radius_px=4.5, sigma_px=2.0)
        assert fit.ok[0]
        errs_fit.append(np.hypot(fit.x[0] - xi, fit.y[0] - yi))
        errs_pix.append(np.hypot(np.rint(xi) - xi, np.rint(yi) - yi))
    rmse_fit = np.sqrt(np.mean(np.square(errs_fit)))
    assert rmse_fit < 0.2
    assert rmse_fit < 0.6 * np.sqrt(np.mean(np.square(errs_pix)))


def test_border_columns_fit_from_existing_pixels():
    img = render_columns((40, 40), np.array([0.4]), np.array([20.2]), np.array([10.0]), 1.5)
    fit = fit_gaussians(img, [0], [20], radius_px=4, sigma_px=1.5)
    assert fit.ok[0]
    assert (fit.x[0], fit.y[0]) == pytest.approx((0.4, 20.2), abs=1e-3)


def test_flat_patch_is_flagged_not_ok():
    img = np.random.default_rng(2).normal(10.0, 1e-3, size=(30, 30))
    fit = fit_gaussians(img, [15], [15], radius_px=4, sigma_px=1.5)
    assert not fit.ok[0]


def test_fixed_sigma_keeps_sigma():
    img = render_columns((30, 30), np.array([15.3]), np.array([14.8]), np.array([10.0]), 1.5)
    fit = fit_gaussians(img, [15], [15], radius_px=4, sigma_px=2.0, fix_sigma=True)
    assert fit.sigma[0] == pytest.approx(2.0)
    assert (fit.x[0], fit.y[0]) == pytest.approx((15.3, 14.8), abs=0.05)


def test_empty_input():
    fit = fit_gaussians(np.ones((10, 10)), [], [], radius_px=3, sigma_px=1)
    assert len(fit.x) == 0 and fit.ok.dtype == bool


@pytest.mark.parametrize("counts", [500.0, 5000.0])
def test_precision_within_1p5_of_the_cramer_rao_bound(counts):
    """Least-squares bound for a pixelated Gaussian spot: var >= 16/9 (s^2 + a^2/12) / N per axis."""
    rng = np.random.default_rng(int(counts))
    s, pitch, n_side = 1.5, 16, 20
    centres = pitch / 2 + pitch * np.arange(n_side)
    gx, gy = np.meshgrid(centres, centres)
    x = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size)
    y = gy.ravel() + rng.uniform(-0.5, 0.5, gy.size)
    amplitude = counts / (2 * np.pi * s ** 2)
    img = rng.poisson(render_columns((pitch * n_side,) * 2, x, y, np.full(len(x), amplitude), s)).astype(float)
    fit = fit_gaussians(img, np.rint(x), np.rint(y), radius_px=4 * s, sigma_px=s)
    assert fit.ok.mean() > 0.99
    ok = fit.ok
    err = np.concatenate([fit.x[ok] - x[ok], fit.y[ok] - y[ok]])
    crlb = np.sqrt(16 / 9 * (s ** 2 + 1 / 12) / counts)
    assert abs(err.mean()) < 3 * crlb / np.sqrt(len(err))  # unbiased
    assert err.std() <= 1.5 * crlb


def test_elliptical_fit_recovers_shape_and_position():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:40, 0:40].astype(float)
    x0, y0, s_major, s_minor, theta = 19.6, 20.3, 2.4, 1.3, 0.5
    dx, dy = xx - x0, yy - y0
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    img = 4.0 + 100.0 * np.exp(-0.5 * (u ** 2 / s_major ** 2 + v ** 2 / s_minor ** 2))
    fit = fit_gaussians(img + 0.01 * rng.standard_normal(img.shape), [20], [20], radius_px=8, sigma_px=2.0,
                        elliptical=True)
    assert fit.ok[0]
    assert abs(fit.x[0] - x0) < 0.01 and abs(fit.y[0] - y0) < 0.01
    assert fit.sigma_major[0] == pytest.approx(s_major, rel=0.01)
    assert fit.sigma_minor[0] == pytest.approx(s_minor, rel=0.01)
    assert fit.theta[0] == pytest.approx(theta, abs=0.01)
    assert fit.sigma[0] == pytest.approx(np.sqrt(s_major * s_minor), rel=0.01)
    # round fits carry no elliptical shape
    round_fit = fit_gaussians(img, [20], [20], radius_px=8, sigma_px=2.0)
    assert round_fit.sigma_major is None


def test_joint_fit_of_a_planted_overlapping_pair():
    # two columns 3.2 px apart with sigma 1.4 px overlap into one elongated blob (no dip between them)
    x = np.array([20.0, 22.6])
    y = np.array([21.0, 22.9])
    img = 4.0 + render_columns((44, 44), x, y, np.array([60.0, 45.0]), 1.4)
    start = np.array([[21.3, 21.95]])  # both starts near the blob's centre, 0.5 px off the truth's axis
    xy1, xy2, amps, sigma, ok = fit_gaussian_pairs(img, start + [[-1.0, -0.5]], start + [[1.0, 0.5]], 1.8)
    assert ok[0]
    assert np.hypot(*(xy1[0] - [x[0], y[0]])) < 1e-3 and np.hypot(*(xy2[0] - [x[1], y[1]])) < 1e-3
    assert np.allclose(amps[0], [60.0, 45.0], rtol=1e-3) and abs(sigma[0] - 1.4) < 1e-3


def test_pair_fit_on_one_column_is_not_a_pair():
    img = 4.0 + render_columns((40, 40), np.array([20.0]), np.array([20.0]), np.array([60.0]), 1.5)
    *_, ok = fit_gaussian_pairs(img, [[19.0, 20.0]], [[21.5, 20.0]], 1.5)
    assert not ok[0]  # the two Gaussians collapse onto one column (or one amplitude goes to zero)


def test_render_columns_takes_a_sigma_per_column():
    img = render_columns((30, 30), np.array([10.0, 12.5]), np.array([15.0, 15.0]), np.array([2.0, 3.0]),
                         np.array([1.2, 0.8]))
    yy, xx = np.mgrid[0:30, 0:30]
    want = sum(a * np.exp(-((xx - x0) ** 2 + (yy - 15.0) ** 2) / (2 * s ** 2))
               for a, x0, s in ((2.0, 10.0, 1.2), (3.0, 12.5, 0.8)))
    assert np.abs(img - want).max() < 1e-5  # drawn to 5 sigma of the widest: cut at 2 exp(-12.5)
    one = render_columns((30, 30), np.array([10.0]), np.array([15.0]), np.array([2.0]), 1.2)
    assert np.array_equal(one, render_columns((30, 30), np.array([10.0]), np.array([15.0]), np.array([2.0]),
                                              np.array([1.2])))
