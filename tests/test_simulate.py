import numpy as np
import pytest

from atomloc.core.errors import AtomlocInputError
from atomloc.locate.refine import fit_gaussians
from atomloc.simulate import SeriesSpec, simulate_series
from atomloc.simulate.render import render_columns
from atomloc.simulate.structures import build_atoms, project_columns


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
    assert np.array_equal(a.frames, b.frames)
    assert a.frames.dtype == np.float32 and a.frames.shape == (3, 64, 64)
    # without scan distortion, truth moves with the rigid drift exactly
    rigid = simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=3, seed=5, scan_creep_px=0.0,
                                       scan_wobble_px=0.0, scan_jitter_px=0.0))
    moved = rigid.truth.x[2] - rigid.truth.x[0]
    assert np.allclose(moved, rigid.drift_px[2, 0])
    assert not np.array_equal(simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=3, seed=6)).frames,
                              a.frames)


def test_truth_sits_on_image_maxima_at_high_dose():
    spec = SeriesSpec(shape_px=(96, 96), n_frames=1, dose_e_per_A2=(1e7, 1e7), read_noise_counts=0, seed=2)
    s = simulate_series(spec)
    img = s.frames[0]
    t = s.truth.as_arrays()
    metal = (t["kind"] == "metal") & (t["x"][0] > 3) & (t["x"][0] < 92) & (t["y"][0] > 3) & (t["y"][0] < 92)
    xs, ys = np.rint(t["x"][0][metal]).astype(int), np.rint(t["y"][0][metal]).astype(int)
    for x, y in zip(xs, ys):
        patch = img[y - 1:y + 2, x - 1:x + 2]
        assert patch.max() == img[y, x] or abs(np.unravel_index(patch.argmax(), patch.shape)[0] - 1) <= 1


def test_mean_counts_follow_dose():
    lo = simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=1, dose_e_per_A2=(1e4, 1e4), seed=1))
    hi = simulate_series(SeriesSpec(shape_px=(64, 64), n_frames=1, dose_e_per_A2=(1e5, 1e5), seed=1))
    assert hi.frames.mean() / lo.frames.mean() == pytest.approx(10.0, rel=0.05)


@pytest.mark.parametrize("key,value", [("n_frames", 0), ("dose_e_per_A2", (5.0, 1.0)), ("material", "Unobtainium"),
                                       ("collection_fraction", 2.0), ("shape_px", (8, 8)), ("simulator", "magic"),
                                       ("defocus_nm", (3.0, -3.0)), ("metal_vacancy_rate", 1.5),
                                       ("dopant_element", "Xx"), ("dopant_rate", 0.2), ("void_radius_A", (0.0, 2.0)),
                                       ("contamination_fraction", -0.1), ("semiangle_mrad", 0.0)])
def test_bad_spec_names_the_key(key, value):
    with pytest.raises(AtomlocInputError, match=key):
        SeriesSpec.from_mapping({key: value}, name="datasets.x")


def test_unknown_key_rejected():
    with pytest.raises(AtomlocInputError, match="unknown"):
        SeriesSpec.from_mapping({"dose": 1}, name="datasets.x")


def test_scan_distortion_moves_truth_and_image_together():
    spec = SeriesSpec(material="MoS2", shape_px=(128, 128), n_frames=2, dose_e_per_A2=(1e9, 1e9),
                      read_noise_counts=0.0, scan_creep_px=3.0, scan_wobble_px=0.8, defocus_nm=(0.0, 0.0),
                      astigmatism_nm=0.0, scan_jitter_px=0.0, seed=3)
    s = simulate_series(spec)
    shift = s.arrays["scan_shift_px"]
    assert shift.shape == (2, 128, 2)
    assert np.allclose(shift.mean(axis=1), 0.0, atol=1e-12)
    assert np.ptp(shift[:, :, 0], axis=1).max() > 1.0  # the rows really move
    for k in range(2):
        x, y = s.truth.x[k], s.truth.y[k]
        inside = (x > 8) & (x < 120) & (y > 8) & (y < 120)
        fit = fit_gaussians(s.frames[k], x[inside], y[inside], radius_px=3.0, sigma_px=2.0)
        assert fit.ok.all()
        err = np.hypot(fit.x - x[inside], fit.y - y[inside])
        assert np.percentile(err, 95) < 0.1  # a shift that varies along a column tilts it slightly


def test_distorted_positions_inverts_row_shifts():
    from atomloc.simulate.render import distorted_positions

    rows = np.arange(100.0)
    shift = np.column_stack([0.02 * rows - 1.0, 1.5 * np.sin(rows / 15.0)])
    x, y = distorted_positions(np.array([10.0, 50.0]), np.array([20.0, 70.0]), shift)
    # the row found satisfies i - dy(i) = y, and x moved by dx of that row
    assert np.allclose(y - np.interp(y, rows, shift[:, 1]), [20.0, 70.0], atol=1e-9)
    assert np.allclose(x, [10.0, 50.0] + np.interp(y, rows, shift[:, 0]), atol=1e-12)


def test_prism_needs_a_perfect_crystal():
    with pytest.raises(AtomlocInputError, match="simulator"):
        SeriesSpec.from_mapping({"simulator": "prism", "void_count": 1}, name="datasets.x")


def test_probe_is_centred_symmetric_and_near_the_diffraction_limit():
    from atomloc.simulate.probe import probe_intensity

    p = probe_intensity(300.0, 25.0, 0.02, 256)
    assert p.sum() == pytest.approx(1.0)
    assert np.unravel_index(p.argmax(), p.shape) == (128, 128)
    assert np.allclose(p[1:, 1:], p[1:, 1:][::-1, ::-1], atol=1e-6 * p.max())
    profile = p[128, :]
    fwhm_A = 0.02 * np.count_nonzero(profile >= profile.max() / 2)
    wavelength_A = 0.01969  # 300 kV
    assert fwhm_A == pytest.approx(0.51 * wavelength_A / 0.025, rel=0.15)
    # defocus spreads the probe: lower peak, same total
    q = probe_intensity(300.0, 25.0, 0.02, 256, defocus_A=50.0)
    assert q.sum() == pytest.approx(1.0) and q.max() < 0.5 * p.max()


def test_render_psf_equals_gaussian_rendering_with_scan_shifts():
    from atomloc.simulate.render import render_psf

    ov, sigma = 4, 1.7
    n = 128
    t = (np.arange(n) - n // 2) / ov
    table = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma ** 2))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(8, 56, 10), rng.uniform(8, 56, 10)
    amp = rng.uniform(1, 3, 10)
    shift = np.column_stack([np.linspace(-1, 1, 64), 0.5 * np.sin(np.arange(64) / 9.0)])
    a = render_psf((64, 64), x, y, amp, table, ov, row_shift_px=shift)
    b = render_columns((64, 64), x, y, amp, sigma, row_shift_px=shift)
    # linear interpolation of a table sampled at sigma / 7: a few 1e-3 of the peak
    assert np.abs(a - b).max() < 5e-3 * b.max()
    yy, xx = np.indices(a.shape)
    assert (a * xx).sum() / a.sum() == pytest.approx((b * xx).sum() / b.sum(), abs=1e-3)
    assert (a * yy).sum() / a.sum() == pytest.approx((b * yy).sum() / b.sum(), abs=1e-3)


@pytest.mark.parametrize("material,px_pm", [("MoS2", 20.0), ("ReS2", 15.0), ("amorphous_C_atoms", 20.0)])
def test_truth_equals_noise_free_peaks(material, px_pm):
    s = simulate_series(SeriesSpec(material=material, shape_px=(128, 128), pixel_size_pm=px_pm, n_frames=2,
                                   seed=4))
    off = s.truth.extra["peak_offset_px"]
    dist = np.hypot(off[..., 0], off[..., 1])
    assert np.isfinite(dist).sum() > 20
    assert np.nanmedian(dist) <= 0.1


def test_depth_of_field_formula():
    from atomloc.core.optics import depth_of_field_nm

    # 300 kV: lambda = 1.9687 pm; 1.77 * 1.9687 pm / (25 mrad)^2 = 5.575 nm
    assert depth_of_field_nm(300.0, 25.0) == pytest.approx(5.575, rel=1e-3)


def test_truth_equals_noise_free_peaks_within_the_depth_of_field():
    """Over the default ±5 nm the in-focus frames keep their peaks on the truth (issue 3's ≤ 0.1 px)."""
    from atomloc.simulate.series import peak_offset_medians

    s = simulate_series(SeriesSpec(material="ReS2", shape_px=(96, 96), pixel_size_pm=15.0, n_frames=8,
                                   defocus_nm=(-5.0, 5.0), seed=2))
    med = peak_offset_medians(s)
    assert med["half_dof_nm"] == pytest.approx(2.79, abs=0.01)
    assert 0 < med["n_in_focus"] < 8
    assert med["in_focus_px"] <= 0.1
    assert med["all_px"] >= med["in_focus_px"]


def test_applied_drift_equals_stored_drift():
    from skimage.registration import phase_cross_correlation

    spec = SeriesSpec(shape_px=(128, 128), n_frames=3, drift_px_per_frame=3.0, scan_creep_px=0.0,
                      scan_wobble_px=0.0, scan_jitter_px=0.0, defocus_nm=(0.0, 0.0), astigmatism_nm=0.0, seed=9)
    s = simulate_series(spec, return_clean=True)
    for k in (1, 2):
        moving, reference = s.clean[k] - s.clean[k].mean(), s.clean[0] - s.clean[0].mean()
        # plain cross-correlation: phase correlation of a lattice is ambiguous between its peaks
        shift, _, _ = phase_cross_correlation(moving, reference, upsample_factor=100, normalization=None)
        assert shift[::-1] == pytest.approx(s.drift_px[k], abs=0.05)  # (row, col) -> (x, y)


def test_mean_counts_equal_the_dose_through_the_model():
    from atomloc.simulate.probe import frame_psf

    spec = SeriesSpec(shape_px=(256, 256), n_frames=2, dose_e_per_A2=(2e4, 2e4), read_noise_counts=0.0,
                      defocus_nm=(0.0, 0.0), astigmatism_nm=0.0, seed=2)
    s = simulate_series(spec)
    cell = project_columns(build_atoms("MoS2"))
    px_A = spec.pixel_size_pm / 100
    psf, ov = frame_psf(spec)
    w = cell.weights(spec.z_exponent)
    cell_area_px = abs(np.linalg.det(cell.cell_A)) / px_A ** 2
    # each column adds amplitude * sum(psf) / ov^2 counts-per-electron, spread over the image
    amplitude = spec.collection_fraction * w / w.max() / psf.max()
    fraction = spec.background_fraction + amplitude.sum() / ov ** 2 / cell_area_px
    expected = 2e4 * px_A ** 2 * fraction
    assert s.frames.mean() == pytest.approx(expected, rel=0.02)


def test_vacancies_dopants_and_voids():
    base = dict(shape_px=(128, 128), n_frames=1, seed=3)
    pristine = simulate_series(SeriesSpec(**base)).truth.as_arrays()
    vac = simulate_series(SeriesSpec(**base, metal_vacancy_rate=0.2, chalcogen_vacancy_rate=0.3)).truth.as_arrays()
    n_metal = (pristine["kind"] == "metal").sum()
    assert (vac["kind"] == "metal").sum() == pytest.approx(0.8 * n_metal, rel=0.1)
    # an S2 column keeps both atoms with p = 0.49, one (element "S", occupancy 0.5) with p = 0.42
    s_cols = vac["kind"] == "chalcogen"
    assert (vac["element"][s_cols] == "S").mean() == pytest.approx(0.42 / 0.91, abs=0.05)
    assert np.all(vac["occupancy"][vac["element"] == "S"] == 0.5)
    dop = simulate_series(SeriesSpec(**base, dopant_element="W", dopant_rate=0.25)).truth.as_arrays()
    metal = dop["kind"] == "metal"
    assert (dop["element"][metal] == "W").mean() == pytest.approx(0.25, abs=0.05)
    assert set(dop["element"][metal]) == {"Mo", "W"}
    void = simulate_series(SeriesSpec(**base, void_count=1, void_radius_A=(8.0, 8.0))).truth.as_arrays()
    lost = len(pristine["x"][0]) - len(void["x"][0])
    # a disc of radius 8 A holds pi 64 / 8.65 A^2 x 2 columns, unless it reaches past the margin
    assert 0 < lost <= np.pi * 64 / 8.65 * 2 * 1.3


def test_rotated_grain_and_bilayer_and_single_atoms():
    from scipy.spatial import cKDTree

    grain = simulate_series(SeriesSpec(shape_px=(128, 128), n_frames=1, grain_radius_A=10.0, scan_creep_px=0.0,
                                       scan_wobble_px=0.0, scan_jitter_px=0.0, seed=1)).truth.as_arrays()
    xy = np.column_stack([grain["x"][0], grain["y"][0]])
    assert cKDTree(xy).query(xy, k=2)[0][:, 1].min() >= 0.8 * 3.16 / np.sqrt(3) / 0.2 - 1e-6
    bi = simulate_series(SeriesSpec(material="MoS2_bilayer", shape_px=(64, 64), n_frames=1, seed=1)).truth.as_arrays()
    assert set(bi["element"]) == {"MoS2"} and np.allclose(bi["weight"], bi["weight"][0])
    atoms = simulate_series(SeriesSpec(material="amorphous_C_atoms", shape_px=(128, 128), n_frames=1,
                                       seed=1)).truth.as_arrays()
    assert set(atoms["element"]) == {"Pt"}  # the carbon film is rendered, never in the truth


def test_contamination_and_ramp_raise_the_background_smoothly():
    base = dict(shape_px=(128, 128), n_frames=1, dose_e_per_A2=(1e5, 1e5), read_noise_counts=0.0, seed=5)
    clean = simulate_series(SeriesSpec(**base), return_clean=True).clean[0]
    dirty = simulate_series(SeriesSpec(**base, contamination_blobs=2, contamination_fraction=0.02,
                                       ramp_fraction=0.01), return_clean=True).clean[0]
    extra = dirty - clean
    px_A2 = 0.2 ** 2
    assert extra.min() >= 0 and extra.max() <= 1e5 * px_A2 * (2 * 0.02 + 0.02 + 0.01) + 1e-9
    assert extra.mean() > 1e5 * px_A2 * 0.005
    # smooth: neighbouring pixels differ by a tiny fraction of the range
    assert np.abs(np.diff(extra, axis=1)).max() < 0.05 * np.ptp(extra)


def test_shipped_res2_cif_matches_the_built_in_cell():
    from pathlib import Path

    import ase.io

    from atomloc.simulate.structures import _res2

    cif = ase.io.read(Path(__file__).parents[1] / "resources" / "structures" / "ReS2_1Tpp.cif")
    ref = _res2()
    assert cif.get_chemical_symbols() == ref.get_chemical_symbols()
    assert np.allclose(cif.cell.cellpar(), [6.66991, 6.79281, 7.19998, 91.8263, 104.1480, 118.8126])
    assert np.allclose(cif.get_scaled_positions(), ref.get_scaled_positions(), atol=1e-9)


def test_abtem_grids_are_fft_friendly_and_its_ffts_go_through_scipy_only_inside_the_settings():
    from scipy.fft import next_fast_len

    from atomloc.simulate.abtem_path import abtem_settings, fast_gpts

    # three 2H-MoS2 cells at 0.05 A: abTEM would take 190 x 219 (219 = 3 x 73)
    gpts = fast_gpts((9.48, 10.95), 0.05)
    assert gpts == (192, 220)
    assert all(next_fast_len(g) == g and g * 0.05 >= e for g, e in zip(gpts, (9.48, 10.95)))
    assert fast_gpts((5.0,), 0.05) == (100,)  # an exact multiple keeps its size

    abtem_fft = pytest.importorskip("abtem.core.fft")
    original = abtem_fft._fft_dispatch
    wave = np.random.default_rng(0).standard_normal((3, 30, 42)).astype(np.complex64)
    with abtem_settings():
        assert abtem_fft._fft_dispatch is not original
        out = abtem_fft.fft2(wave)
        back = abtem_fft.ifft2(out)
    assert abtem_fft._fft_dispatch is original
    assert np.allclose(out, np.fft.fft2(wave), atol=1e-4) and np.allclose(back, wave, atol=1e-5)


def test_linear_model_agrees_with_multislice_on_a_small_cell():
    """The validation path: abTEM multislice HAADF (45-180 mrad) of a MoS2 cell vs the linear model."""
    from atomloc.simulate.abtem_path import abtem_cell_images, sample_cell_image
    from atomloc.simulate.probe import point_spread_function, probe_intensity
    from atomloc.simulate.render import render_psf
    from atomloc.simulate.series import noise_free_peak_offsets
    from atomloc.simulate.structures import tile_columns

    ms = abtem_cell_images("MoS2", "multislice", 300.0, 25.0, [0.0], supercell_A=10.0)
    px, shape = 0.05, (192, 192)
    a = sample_cell_image(ms["images"][0], ms["sampling_A"], shape, px, 0.0, (0.0, 0.0), (0.0, 0.0),
                          np.zeros((shape[0], 2)))
    cell = project_columns(build_atoms("MoS2"))
    xy, index = tile_columns(cell, -8, shape[1] * px + 8, -8, shape[0] * px + 8)
    psf = point_spread_function(probe_intensity(300.0, 25.0, px, 256), px, 0.0, 0.0)
    b = render_psf(shape, xy[:, 0] / px, xy[:, 1] / px, cell.weights(1.5)[index], psf, 1)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.97
    off_a = noise_free_peak_offsets(a, xy[:, 0] / px, xy[:, 1] / px, radius_px=3)
    off_b = noise_free_peak_offsets(b, xy[:, 0] / px, xy[:, 1] / px, radius_px=3)
    both = np.isfinite(off_a[:, 0]) & np.isfinite(off_b[:, 0])
    assert both.sum() >= 10
    assert np.abs(off_a[both] - off_b[both]).max() * px <= 0.05  # Å
    assert np.abs(off_a[both]).max() * px <= 0.05  # and multislice peaks sit on the columns
