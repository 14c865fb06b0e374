"""Strain from positions, GPA, lattice estimation and the applied strain fields."""

import numpy as np
import pytest

from atomloc.analysis.strain import (
    gpa_strain,
    lattice_parameter_precision,
    lattice_vectors_from_positions,
    reference_lattice,
    sample_map,
    strain_from_positions,
)
from atomloc.core.errors import AtomlocInputError
from atomloc.core.geometry import rotated_lattice_px
from atomloc.simulate.strain_fields import applied_strain


def honeycomb(a_px=12.0, n=20, rotation_deg=17.0):
    """MoS2-like 2-site lattice (hexagonal a, basis at 1/3, 2/3), rows a and b in pixels."""
    t = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    lattice = np.array([[a_px, 0.0], [-a_px / 2, a_px * np.sqrt(3) / 2]]) @ rot.T
    basis = np.array([[0.0, 0.0], [1 / 3, 2 / 3]]) @ lattice
    ij = np.stack(np.meshgrid(np.arange(-n, n), np.arange(-n, n), indexing="ij"), -1).reshape(-1, 2)
    xy = (ij @ lattice)[:, None, :] + basis[None]
    return xy.reshape(-1, 2), lattice


def test_lattice_vectors_skip_the_basis_vector():
    xy, lattice = honeycomb()
    keep = np.all(np.abs(xy) < 120, axis=1)
    est = lattice_vectors_from_positions(xy[keep])
    assert np.allclose(np.hypot(*est.T), 12.0, atol=1e-6)  # the Mo-S vector (6.9 px) is not a translation
    cross = est[0, 0] * est[1, 1] - est[0, 1] * est[1, 0]
    assert cross > 0 and abs(cross) == pytest.approx(12.0 ** 2 * np.sqrt(3) / 2, rel=1e-6)


def test_lattice_vectors_of_random_points_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(AtomlocInputError, match="lattice"):
        lattice_vectors_from_positions(rng.uniform(0, 200, size=(300, 2)))


def test_uniform_strain_recovered_from_positions():
    xy, lattice = honeycomb()
    eps = np.array([[0.012, -0.004], [-0.004, -0.007]])
    omega = 0.003
    F = np.eye(2) + eps + np.array([[0, -omega], [omega, 0]])
    strained = xy @ F.T
    table = strain_from_positions(strained, lattice)
    inner = table[np.all(np.abs(xy) < 150, axis=1)]
    assert inner["exx"].notna().all()
    assert np.abs(inner["exx"] - 0.012).max() <= 1e-3
    assert np.abs(inner["eyy"] + 0.007).max() <= 1e-3
    assert np.abs(inner["exy"] + 0.004).max() <= 1e-3
    assert np.abs(inner["omega"] - omega).max() <= 1e-3
    assert np.abs(inner["hydrostatic"] - 0.0025).max() <= 1e-3


def test_reference_lattice_is_the_median_over_the_region():
    xy, lattice = honeycomb()
    strained = xy * 1.01
    ref = reference_lattice(strained, lattice, region=np.hypot(*xy.T) < 60)
    assert np.allclose(ref, lattice * 1.01, atol=1e-9)


@pytest.mark.parametrize("field", ["uniform", "gradient", "bulge"])
def test_applied_strain_is_the_gradient_of_its_displacement(field):
    rng = np.random.default_rng(1)
    xy = rng.uniform(-40, 40, size=(50, 2))
    _, eps = applied_strain(xy, (0.0, 0.0), field, 0.03, 15.0, 80.0)
    h = 1e-4
    ux1, _ = applied_strain(xy + [h, 0], (0, 0), field, 0.03, 15.0, 80.0)
    ux0, _ = applied_strain(xy - [h, 0], (0, 0), field, 0.03, 15.0, 80.0)
    uy1, _ = applied_strain(xy + [0, h], (0, 0), field, 0.03, 15.0, 80.0)
    uy0, _ = applied_strain(xy - [0, h], (0, 0), field, 0.03, 15.0, 80.0)
    dudx, dudy = (ux1 - ux0) / (2 * h), (uy1 - uy0) / (2 * h)
    assert np.allclose(eps[:, 0], dudx[:, 0], atol=1e-7)
    assert np.allclose(eps[:, 1], dudy[:, 1], atol=1e-7)
    assert np.allclose(eps[:, 2], 0.5 * (dudx[:, 1] + dudy[:, 0]), atol=1e-7)
    assert np.allclose(dudx[:, 1], dudy[:, 0], atol=1e-7)  # no rotation


def test_rotated_lattice_px():
    cell = np.array([[3.0, 0.0], [0.0, 4.0]])
    lat = rotated_lattice_px(cell, 90.0, 50.0)
    assert np.allclose(lat, [[0.0, 6.0], [-8.0, 0.0]], atol=1e-12)


def gaussian_lattice_image(xy, shape, sigma_px=1.6):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = np.zeros(shape)
    for x, y in xy:
        if -5 < x < shape[1] + 5 and -5 < y < shape[0] + 5:
            sl = (slice(max(int(y) - 6, 0), int(y) + 7), slice(max(int(x) - 6, 0), int(x) + 7))
            img[sl] += np.exp(-((xx[sl] - x) ** 2 + (yy[sl] - y) ** 2) / (2 * sigma_px ** 2))
    return img


def test_gpa_recovers_a_two_percent_step():
    shape = (256, 256)
    a = 8.0
    lattice = np.array([[a, 0.0], [a / 2, a * np.sqrt(3) / 2]])
    ij = np.stack(np.meshgrid(np.arange(-10, 60), np.arange(-10, 60), indexing="ij"), -1).reshape(-1, 2)
    xy = ij @ lattice
    xy[:, 0] -= 40
    half = shape[1] / 2
    x = xy[:, 0]
    xy[:, 0] = np.where(x > half, half + 1.02 * (x - half), x)  # eps_xx = 0.02 right of the step
    img = gaussian_lattice_image(xy, shape)
    ref = np.zeros(shape, bool)
    ref[32:224, 16:96] = True
    maps = gpa_strain(img, lattice, reference_region=ref)
    left = maps["exx"][32:224, 24:104].mean()
    right = maps["exx"][32:224, 152:232].mean()
    assert abs(left) <= 2e-3
    assert abs(right - 0.02) <= 2e-3
    assert abs(maps["eyy"][32:224, 152:232].mean()) <= 2e-3
    assert abs(maps["exy"][32:224, 24:232].mean()) <= 2e-3


def test_gpa_uniform_strain_against_the_given_lattice():
    shape = (192, 192)
    lattice = np.array([[9.0, 0.0], [0.0, 9.0]])
    ij = np.stack(np.meshgrid(np.arange(-2, 26), np.arange(-2, 26), indexing="ij"), -1).reshape(-1, 2)
    xy = (ij @ lattice) @ np.array([[1.01, 0.0], [0.0, 0.99]]).T
    img = gaussian_lattice_image(xy, shape)
    assert abs(gpa_strain(img, lattice)["exx"][32:160, 32:160].mean()) <= 1e-3  # refined g: its own reference
    maps = gpa_strain(img, lattice, refine=False)  # relative to the given lattice
    inner = (slice(32, 160), slice(32, 160))
    assert maps["exx"][inner].mean() == pytest.approx(0.01, abs=1e-3)
    assert maps["eyy"][inner].mean() == pytest.approx(-0.01, abs=1e-3)
    assert abs(maps["omega"][inner].mean()) <= 1e-3


def test_gpa_rejects_constant_image():
    with pytest.raises(AtomlocInputError, match="non-constant"):
        gpa_strain(np.ones((64, 64)), np.eye(2) * 8)


def test_lattice_parameter_precision_matches_the_noise():
    rng = np.random.default_rng(3)
    xy, lattice = honeycomb(a_px=20.0, n=30)
    sigma_px = 0.3
    noisy = xy + rng.normal(0, sigma_px, size=xy.shape)
    std_a, std_b, n_a, n_b = lattice_parameter_precision(noisy, lattice, pixel_size_pm=10.0)
    # |a| = |a0 + e2 - e1|: its spread along a is sqrt(2) sigma.
    assert std_a == pytest.approx(np.sqrt(2) * sigma_px * 10.0, rel=0.1)
    assert std_b == pytest.approx(np.sqrt(2) * sigma_px * 10.0, rel=0.1)
    assert n_a > 1000 and n_b > 1000


def test_sample_map_bilinear():
    field = np.arange(12.0).reshape(3, 4)
    assert sample_map(field, np.array([[1.5, 1.0], [0.0, 0.5]])).tolist() == [5.5, 2.0]
    assert np.isnan(sample_map(field, np.array([[10.0, 0.0]])))[0]


@pytest.mark.parametrize("field", ["uniform", "gradient", "bulge"])
def test_simulated_strain_field_is_in_the_truth(field):
    from atomloc.simulate import SeriesSpec, simulate_series

    spec = SeriesSpec(material="MoS2", shape_px=(160, 160), pixel_size_pm=20.0, n_frames=1, rotation_deg=12.0,
                      scan_creep_px=0.0, scan_wobble_px=0.0, strain_field=field, strain_magnitude=0.02,
                      strain_radius_A=8.0, dose_e_per_A2=(1e4, 1e4), seed=4)
    series = simulate_series(spec)
    lattice = series.attrs["lattice_px"]
    assert np.hypot(*lattice[0]) == pytest.approx(315.9 / 20.0, rel=0.01)  # MoS2 a = 3.16 Å
    xy = np.column_stack([series.truth.x[0], series.truth.y[0]])
    table = strain_from_positions(xy, lattice)
    applied = series.truth.extra["strain"]
    ok = table["exx"].notna().to_numpy()
    assert ok.mean() > 0.8
    # the ±a/±b finite difference of a smooth field: exact for uniform, O(a^2) curvature error otherwise
    tol = 1e-3 if field != "bulge" else 5e-3
    assert np.abs(table["exx"].to_numpy()[ok] - applied[ok, 0]).max() <= tol
    assert np.abs(table["eyy"].to_numpy()[ok] - applied[ok, 1]).max() <= tol


def test_strain_needs_the_linear_simulator_and_a_crystal():
    from atomloc.simulate import SeriesSpec

    with pytest.raises(AtomlocInputError, match="simulator"):
        SeriesSpec(simulator="prism", strain_field="uniform").check()
    with pytest.raises(AtomlocInputError, match="strain_field"):
        SeriesSpec(material="amorphous_C_atoms", strain_field="bulge").check()
    with pytest.raises(AtomlocInputError, match="strain_field"):
        SeriesSpec(strain_field="shear").check()
