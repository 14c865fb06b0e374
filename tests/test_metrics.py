import numpy as np
import pytest

from atomloc.analysis.metrics import chamfer_distance, match_points, score_detections
from atomloc.core.geometry import nearest_neighbour_spacing


def grid(n=10, step=10.0, offset=15.0):
    ii, jj = np.meshgrid(np.arange(n), np.arange(n))
    return np.column_stack([ii.ravel() * step + offset, jj.ravel() * step + offset])


def test_perfect_prediction():
    ref = grid()
    s = score_detections(ref.copy(), ref, (130, 130), pixel_size_pm=10)
    assert (s.tp, s.fp, s.fn) == (100, 0, 0)
    assert s.f1 == 1.0 and s.jaccard == 1.0 and s.chamfer_px == 0.0 and s.rmse_px == 0.0


def test_counts_precision_recall_standard_definitions():
    ref = grid()
    pred = ref[:80] + 0.5  # 80 found, 0.5 px off in x and y
    pred = np.vstack([pred, [[1000, 1000]], [[60.0, 60.0 + 5.0]]])  # one far outside image, one between columns
    s = score_detections(pred, ref, (130, 130), pixel_size_pm=20.0, border_frac=0.0)
    assert s.tp == 80 and s.fn == 20 and s.fp == 1  # the out-of-image point is not counted
    assert s.precision == pytest.approx(80 / 81)
    assert s.recall == pytest.approx(80 / 100)
    assert s.f1 == pytest.approx(2 * (80 / 81) * 0.8 / (80 / 81 + 0.8))
    assert s.jaccard == pytest.approx(80 / 101)
    assert s.rmse_px == pytest.approx(np.sqrt(0.5))
    assert s.rmse_pm == pytest.approx(20.0 * np.sqrt(0.5))
    assert s.match_radius_px == pytest.approx(3.0)


def test_match_is_one_to_one_and_optimal():
    ref = np.array([[0.0, 0.0], [2.0, 0.0]])
    pred = np.array([[1.1, 0.0], [2.1, 0.0]])
    pairs = match_points(pred, ref, radius_px=1.5)
    # greedy nearest would pair pred0 with ref1 and lose ref0; optimal pairs both
    assert sorted(map(tuple, pairs.tolist())) == [(0, 0), (1, 1)]
    pairs = match_points(np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 0.0]]), radius_px=1.0)
    assert len(pairs) == 1


def test_border_pair_straddling_margin_is_neither_fp_nor_fn():
    ref = np.array([[5.2, 50.0], [50.0, 50.0], [30.0, 50.0]])
    pred = np.array([[4.8, 50.0], [50.0, 50.0], [30.0, 50.0]])
    s = score_detections(pred, ref, (100, 100), border_frac=0.25, spacing_px=20.0)  # margin 5 px
    assert (s.fp, s.fn, s.tp) == (0, 0, 3)


def test_chamfer_distance_formula():
    p = np.array([[0.0, 0.0], [10.0, 0.0]])
    t = np.array([[1.0, 0.0]])
    # mean_p min_t = (1 + 9) / 2 = 5; mean_t min_p = 1
    assert chamfer_distance(p, t) == pytest.approx(6.0)
    assert np.isnan(chamfer_distance(np.zeros((0, 2)), t))


def test_empty_prediction_scores_zero():
    s = score_detections(np.zeros((0, 2)), grid(), (130, 130))
    assert s.f1 == 0.0 and s.fn == 100 and s.tp == 0 and np.isnan(s.rmse_px)


def test_nearest_neighbour_spacing():
    assert nearest_neighbour_spacing(grid(step=7.0)) == pytest.approx(7.0)


def test_many_points_fast_enough_and_correct():
    ref = grid(n=60, step=8.0, offset=4.0)
    rng = np.random.default_rng(0)
    pred = ref + rng.normal(0, 0.3, ref.shape)
    s = score_detections(pred, ref, (500, 500))
    assert s.tp == s.n_ref and s.fp == 0


def test_crlb_tends_to_the_analytic_limit():
    from atomloc.analysis.crlb import gaussian_position_crlb_px

    # no background, column much wider than a pixel: sqrt(2) s / sqrt(N), N = 2 pi s^2 A
    for A, s in [(100.0, 5.0), (10.0, 8.0)]:
        assert gaussian_position_crlb_px(A, s, 0.0) == pytest.approx(np.sqrt(2) * s / np.sqrt(2 * np.pi * s * s * A),
                                                                     rel=1e-3)
    # background only makes it worse; more counts make it better as 1/sqrt(dose)
    assert gaussian_position_crlb_px(100, 2, 10) > gaussian_position_crlb_px(100, 2, 0)
    assert gaussian_position_crlb_px(400, 2, 40) == pytest.approx(gaussian_position_crlb_px(100, 2, 10) / 2, rel=1e-9)
    assert np.isnan(gaussian_position_crlb_px(0.0, 2, 1))


def test_gaussian_fits_approach_the_crlb_on_poisson_images():
    from atomloc.analysis.crlb import gaussian_position_crlb_px, image_crlb_px
    from atomloc.locate.refine import fit_gaussians

    rng = np.random.default_rng(5)
    A, s, B, a = 40.0, 1.6, 4.0, 12.0
    g = np.arange(8, 248, a)
    xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) + rng.uniform(-0.5, 0.5, size=(len(g) ** 2, 2))
    yy, xx = np.mgrid[0:256, 0:256]
    mu = np.full((256, 256), B)
    for x, y in xy:
        mu += A * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
    bound = gaussian_position_crlb_px(A, s, B)
    errs = []
    for _ in range(4):
        img = rng.poisson(mu).astype(float)
        fit = fit_gaussians(img, xy[:, 0], xy[:, 1], 0.4 * a, sigma_px=s)
        errs.append(np.sum((np.column_stack([fit.x, fit.y]) - xy)[fit.ok] ** 2, axis=1))
        assert image_crlb_px(img, xy, a) == pytest.approx(bound, rel=0.15)
    rmse = np.sqrt(np.mean(np.concatenate(errs)))
    assert bound <= rmse <= 1.5 * bound


def test_only_false_positives():
    ref = np.array([[10.0, 10.0], [20.0, 10.0], [10.0, 20.0], [20.0, 20.0]])
    pred = np.array([[15.0, 15.0], [15.0, 14.0]])  # farther than 0.3 x spacing (3 px) from every reference
    s = score_detections(pred, ref, (40, 40), border_frac=0.0)
    assert (s.tp, s.fp, s.fn) == (0, 2, 4)
    assert s.precision == s.recall == s.f1 == s.jaccard == 0.0
    assert np.isnan(s.rmse_px)


def test_duplicate_predictions_count_once():
    ref = np.array([[10.0, 10.0], [20.0, 10.0], [10.0, 20.0], [20.0, 20.0]])
    pred = np.vstack([ref, [[10.5, 10.0], [20.0, 20.5]]])  # two columns found twice
    s = score_detections(pred, ref, (40, 40), border_frac=0.0)
    assert (s.tp, s.fp, s.fn) == (4, 2, 0)
    assert s.precision == pytest.approx(4 / 6) and s.recall == 1.0
    assert s.f1 == pytest.approx(0.8) and s.jaccard == pytest.approx(4 / 6)
    assert s.rmse_px == 0.0  # the exact copies are the ones matched
