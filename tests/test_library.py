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
