import numpy as np
import pytest
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max

from atomloc.core.errors import AtomlocInputError
from atomloc.core.geometry import nearest_neighbour_spacing
from atomloc.core.optics import circular_mask_radius_A, electron_wavelength_A
from atomloc.io.training import read_library, write_library
from atomloc.simulate.library import LIBRARY_STRUCTURES, LibrarySpec, peak_map, render_library_image, synthesize_library
from atomloc.simulate.structures import MATERIALS, build_atoms, project_columns


@pytest.fixture(scope="module")
def small_library():
    return synthesize_library(
        LibrarySpec(structures=LIBRARY_STRUCTURES, n_images=len(LIBRARY_STRUCTURES), shape_px=96, seed=3))


def test_every_material_builds_with_the_viewing_direction_along_z():
    for name in MATERIALS:
        atoms = build_atoms(name)
        cell = np.asarray(atoms.cell)
        assert abs(cell[0, 1]) < 1e-9 and abs(cell[0, 2]) < 1e-9 and abs(cell[1, 2]) < 1e-9, name
        assert len(project_columns(atoms).xy_A) >= 2, name


def test_res2_cell_and_columns():
    atoms = build_atoms("ReS2")
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    assert (a, b, gamma) == pytest.approx((6.66991, 6.79281, 118.8126), abs=1e-4)
    cols = project_columns(atoms)
    assert sorted(cols.element).count("Re") == 4 and len(cols.xy_A) == 12  # no two S overlap in projection


def test_pt_110_columns_hold_two_atoms_per_period():
    cols = project_columns(build_atoms("Pt_110"))
    assert set(cols.element) == {"Pt2"}
    a, b = np.linalg.norm(cols.cell_A, axis=1)
    assert sorted([a, b]) == pytest.approx(sorted([3.924, 3.924 * np.sqrt(2)]), rel=1e-6)


def test_wavelength_and_circular_mask_radius():
    assert electron_wavelength_A(300) == pytest.approx(0.019687, rel=1e-4)
    assert electron_wavelength_A(200) == pytest.approx(0.025079, rel=1e-4)
    r = circular_mask_radius_A(300, 25.0, 1.0)
    assert r == pytest.approx(np.hypot(0.5 * 0.019687 / 0.025, 0.5), rel=1e-4)


def test_confidence_peaks_sit_on_the_positions_with_value_one(small_library):
    for k in range(len(small_library["images"])):
        conf = small_library["confidence"][k]
        pos = small_library["positions"][k]
        assert conf.max() == pytest.approx(1.0, abs=0.02)
        peaks = peak_local_max(conf, min_distance=1, threshold_abs=0.5, exclude_border=False)[:, ::-1]
        inner = pos[(pos > 2).all(axis=1) & (pos < 93).all(axis=1)]
        d, _ = cKDTree(peaks).query(inner)
        assert np.all(d <= 0.75), small_library["structure"][k]


def test_spacing_label_is_the_mean_nearest_neighbour_distance():
    spec = LibrarySpec(shape_px=96, seed=1)
    item = render_library_image(spec, "Pt_001", np.random.default_rng(0))
    # Pt [001]: square lattice of a/2 = 1.962 Å columns.
    assert item["spacing_px"] * item["pixel_size_pm"] / 100 == pytest.approx(3.924 / 2, rel=1e-6)
    assert spec.spacing_px_range[0] <= item["spacing_px"] <= spec.spacing_px_range[1]
    assert nearest_neighbour_spacing(item["positions"]) == pytest.approx(item["spacing_px"], rel=0.02)


def test_amorphous_carbon_is_not_labelled():
    item = render_library_image(LibrarySpec(shape_px=96), "amorphous_C_atoms", np.random.default_rng(2))
    # Pt atoms and clusters only: a few to a few dozen, at least 2.6 Å apart.
    assert 3 <= len(item["positions"]) < 100
    d = cKDTree(item["positions"]).query(item["positions"], k=2)[0][:, 1]
    assert d.min() * item["pixel_size_pm"] / 100 >= 2.6 - 1e-9


def test_peak_map_combines_by_maximum():
    m = peak_map((20, 20), np.array([[10.0, 10.0], [11.0, 10.0]]), 2.0)
    assert m.max() == pytest.approx(1.0)


def test_library_is_reproducible_and_round_trips(tmp_path, small_library):
    again = synthesize_library(
        LibrarySpec(structures=LIBRARY_STRUCTURES, n_images=len(LIBRARY_STRUCTURES), shape_px=96, seed=3))
    assert np.array_equal(again["images"], small_library["images"])
    assert list(small_library["structure"]) == list(LIBRARY_STRUCTURES)
    write_library(tmp_path / "a.h5", small_library)
    write_library(tmp_path / "b.h5", again)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    back = read_library(tmp_path / "a.h5")
    assert np.array_equal(back["confidence"], small_library["confidence"])
    for p, q in zip(back["positions"], small_library["positions"]):
        assert np.array_equal(p, q)


def test_bad_library_settings_name_the_key(tmp_path):
    with pytest.raises(AtomlocInputError, match="library.structures"):
        LibrarySpec.from_mapping({"structures": ["unobtainium"]})
    with pytest.raises(AtomlocInputError, match="library.spacing_px_range"):
        LibrarySpec.from_mapping({"spacing_px_range": [10, 4]})
    with pytest.raises(AtomlocInputError, match="unknown keys"):
        LibrarySpec.from_mapping({"n_image": 3})
    (tmp_path / "x.h5").write_bytes(b"junk")
    with pytest.raises(AtomlocInputError, match="x.h5"):
        read_library(tmp_path / "x.h5")


# --- restoration targets (TEMImageNet's noNoise, noBackgroundnoNoise, super-resolution) ---------------------

def _single_column(effects=None, upsample=1, sigma_px=2.0, sr_sigma_px=1.0, background=0.0):
    from atomloc.simulate.library import restoration_targets

    xy = np.array([[20.3, 17.6]])
    return restoration_targets(40, xy, np.array([2.0]), sigma_px, np.zeros((40, 2)), effects or {}, background,
                               gain=50.0, offset=3.0, superres_sigma_px=sr_sigma_px, upsample=upsample)


def test_restoration_targets_follow_their_definitions():
    from atomloc.core.image import render_columns

    t = _single_column(background=0.25)
    column = 2.0 * 50.0 * render_columns((40, 40), [20.3], [17.6], np.ones(1), 2.0, np.zeros((40, 2)))
    np.testing.assert_allclose(t["no_background_no_noise"], column, rtol=0, atol=1e-9)
    np.testing.assert_allclose(t["no_noise"], column + 50.0 * 0.25 + 3.0, rtol=0, atol=1e-9)
    # super-resolution: sharper, same integrated intensity, peak on the column
    # amplitude 2 x 50 x (2 / 1)^2 = 400, sampled 0.3 px and 0.4 px off the column's centre
    assert t["superres"][18, 20] == pytest.approx(400 * np.exp(-0.5 * (0.3 ** 2 + 0.4 ** 2)), rel=1e-9)
    assert t["superres"].sum() == pytest.approx(t["no_background_no_noise"].sum(), rel=1e-3)
    iy, ix = np.unravel_index(np.argmax(t["superres"]), t["superres"].shape)
    assert (ix, iy) == (20, 18)


def test_superres_target_removes_probe_tails_and_astigmatism_but_keeps_intensity():
    effects = {"probe_tail": {"fraction": 0.3, "width": 4.0}, "astigmatism": {"extra": 0.8, "angle_rad": 0.5}}
    plain, aberrated = _single_column(), _single_column(effects)
    assert aberrated["no_background_no_noise"].max() < 0.8 * plain["no_background_no_noise"].max()
    np.testing.assert_allclose(aberrated["superres"], plain["superres"])
    # the tails carry intensity out to a few sigma; over the field it is all there
    assert aberrated["no_background_no_noise"].sum() == pytest.approx(plain["superres"].sum(), rel=0.01)


def test_upsampled_targets_sit_on_the_finer_grid():
    fine, coarse = _single_column(upsample=2, background=np.full((40, 40), 0.25)), _single_column(background=0.25)
    for key in ("no_noise", "no_background_no_noise", "superres"):
        assert fine[key].shape == (80, 80)
        # the same values per unit area: a quarter of the fine sum is the coarse sum
        assert fine[key].sum() / 4 == pytest.approx(coarse[key].sum(), rel=1e-3)
    for key in ("no_noise", "no_background_no_noise"):  # sigma 2 px: 2x2 binning gives back the coarse target
        binned = fine[key].reshape(40, 2, 40, 2).mean(axis=(1, 3))
        assert np.abs(binned - coarse[key]).max() < 0.03 * coarse[key].max()
    # the column at x = 20.3, y = 17.6 (coarse) sits at 2x + 0.5 on the fine grid
    col = fine["no_background_no_noise"]
    iy, ix = np.unravel_index(np.argmax(col), col.shape)
    assert (ix, iy) == (41, 36)


@pytest.mark.parametrize("effects_prob", [0.0, 1.0])
def test_library_no_noise_target_is_the_expected_image(effects_prob):
    spec = LibrarySpec(shape_px=64, restoration_labels=True, upsample_labels=True, effects_prob=effects_prob,
                       electrons_per_px_range=(200.0, 200.0))
    for k, structure in enumerate(["MoS2", "SrTiO3_001", "Pt_110"]):
        item = render_library_image(spec, structure, np.random.default_rng(k))
        assert item["no_noise_x2"].shape == (128, 128)
        residual = item["image"] - item["no_noise"]
        if effects_prob == 0:  # Poisson + read noise of 0.5 counts around the expectation
            z = residual / np.sqrt(item["no_noise"] + 0.25)
            assert abs(z.mean()) < 0.05 and 0.9 < z.std() < 1.1
        else:  # detector gain/offset and 8-bit scaling act on the targets too: no bias beyond the noise
            unsaturated = (item["image"] > 0) & (item["image"] < 255) if "quantise" in item["effects"] else True
            assert abs(np.median(residual[unsaturated])) < 0.1 * np.ptp(item["no_noise"])
        assert item["no_background_no_noise"].min() >= 0


def test_restoration_labels_do_not_change_the_image():
    plain = render_library_image(LibrarySpec(shape_px=64, effects_prob=0.5), "ReS2", np.random.default_rng(5))
    more = render_library_image(LibrarySpec(shape_px=64, effects_prob=0.5, restoration_labels=True), "ReS2",
                                np.random.default_rng(5))
    np.testing.assert_array_equal(plain["image"], more["image"])
    assert "no_noise" not in plain and "superres" in more


def test_io_spells_the_restoration_maps_as_the_library_does():
    from atomloc.io.training import RESTORATION_MAPS
    from atomloc.simulate.library import restoration_maps

    assert RESTORATION_MAPS == restoration_maps()
