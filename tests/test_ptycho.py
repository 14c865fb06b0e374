"""Ptychography: the torch forward model, reconstruction, the object-grid mapping, 4D-STEM HDF5, virtual images."""

import numpy as np
import pytest
import torch

from atomloc.core.errors import AtomlocInputError
from atomloc.io.fourd import FourDSTEM, read_4dstem, write_4dstem
from atomloc.ptycho import (
    forward_intensities,
    fresnel_propagator,
    initial_probe,
    object_grid,
    phase_on_scan_grid,
    reconstruct_ptycho,
)
from atomloc.ptycho.virtual import virtual_images


def numpy_intensities(obj, probe, centres_px, propagator=None):
    """|F[P(r - r_p) O(r)]|^2 written out position by position with numpy (the reference of the torch model)."""
    obj = np.asarray(obj)
    slices = obj[None] if obj.ndim == 2 else obj
    ny, nx = probe.shape
    out = []
    for cy, cx in centres_px:
        ry, rx = int(np.round(cy)), int(np.round(cx))
        dy, dx = cy - ry, cx - rx
        ky = np.fft.fftfreq(ny)[:, None]
        kx = np.fft.fftfreq(nx)[None, :]
        shifted = np.fft.ifft2(np.fft.fft2(probe) * np.exp(-2j * np.pi * (ky * dy + kx * dx)))
        top, left = ry - ny // 2, rx - nx // 2
        psi = shifted * slices[0, top:top + ny, left:left + nx]
        for s in range(1, len(slices)):
            psi = np.fft.ifft2(np.fft.fft2(psi) * propagator) * slices[s, top:top + ny, left:left + nx]
        out.append(np.abs(np.fft.fftshift(np.fft.fft2(psi) / np.sqrt(ny * nx))) ** 2)
    return np.array(out)


@pytest.mark.parametrize("n_slices", [1, 3])
def test_forward_model_equals_numpy_fft(n_slices):
    rng = np.random.default_rng(0)
    h, w, ny, nx = 40, 44, 16, 18
    obj = np.exp(rng.normal(0, 0.1, (n_slices, h, w)) + 1j * rng.normal(0, 0.5, (n_slices, h, w)))
    probe = rng.normal(size=(ny, nx)) + 1j * rng.normal(size=(ny, nx))
    centres = np.column_stack([rng.uniform(ny // 2, h - ny // 2 - 1, 12), rng.uniform(nx // 2, w - nx // 2 - 1, 12)])
    centres[:3] = np.round(centres[:3])  # whole-pixel positions too
    prop = fresnel_propagator((ny, nx), (0.08, 0.07), 300.0, 2.0) if n_slices > 1 else None
    expected = numpy_intensities(obj if n_slices > 1 else obj[0], probe, centres, prop)
    got = forward_intensities(torch.as_tensor(obj if n_slices > 1 else obj[0]), torch.as_tensor(probe), centres,
                              propagator=None if prop is None else torch.as_tensor(prop)).numpy()
    rel = np.abs(got - expected).max() / expected.max()
    assert rel < 1e-12, rel


def gaussian_atoms_phase(shape, origin_A, sampling_A, rng, n_atoms=5, height_rad=0.3, sigma_A=0.35):
    """A weak-phase object: Gaussian 'atoms' at random places of the scanned area."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] * sampling_A
    yy, xx = yy + origin_A[0], xx + origin_A[1]
    atoms = rng.uniform(0.5, 5.0, size=(n_atoms, 2))
    return sum(height_rad * np.exp(-((xx - ax) ** 2 + (yy - ay) ** 2) / (2 * sigma_A ** 2)) for ax, ay in atoms)


def test_reconstruction_recovers_weak_phase_object():
    """Noise-free data of a known object and probe: the phase comes back to within 5 mrad RMS (1.6 % of the
    0.3 rad atoms), 15 mrad at worst, over the scanned area, up to a constant."""
    n, sampling, step, ns = 32, 0.2, 0.4, 14
    dk = 1.0 / (n * sampling)
    shape, origin = object_grid((ns, ns), step, (0.0, 0.0), sampling, (n, n), 2)
    phase = gaussian_atoms_phase(shape, origin, sampling, np.random.default_rng(0))
    probe = initial_probe((n, n), dk, 300.0, 25.0, 0.0, 1e4)
    ii, jj = np.meshgrid(np.arange(ns), np.arange(ns), indexing="ij")
    centres = np.column_stack([(ii.ravel() * step - origin[0]) / sampling, (jj.ravel() * step - origin[1]) / sampling])
    data = forward_intensities(torch.as_tensor(np.exp(1j * phase)), torch.as_tensor(probe), centres).numpy()
    result = reconstruct_ptycho(data.reshape(ns, ns, n, n), scan_sampling_A=step, energy_keV=300.0,
                                semiangle_mrad=25.0, reciprocal_sampling_per_A=dk, n_iterations=30, batch_size=16,
                                learning_rate=0.02, probe_learning_rate=0.0, seed=0)
    assert result.phase.shape == shape and np.allclose(result.object_origin_A, origin)
    assert result.loss[-1] < 0.01 * result.loss[0]
    inner = (slice(int(centres[:, 0].min()), int(centres[:, 0].max()) + 1),
             slice(int(centres[:, 1].min()), int(centres[:, 1].max()) + 1))
    err = result.phase[inner] - phase[inner]
    err -= err.mean()
    assert np.sqrt(np.mean(err ** 2)) < 0.005
    assert np.abs(err).max() < 0.015


def test_multislice_and_regulariser_run():
    rng = np.random.default_rng(1)
    data = rng.poisson(50.0, size=(4, 5, 16, 16)).astype(np.float32)
    result = reconstruct_ptycho(data, scan_sampling_A=0.5, energy_keV=300.0, semiangle_mrad=25.0,
                                angular_sampling_mrad=3.0, n_slices=2, slice_thickness_A=2.0, n_iterations=3,
                                batch_size=8, kz_regularization=0.1, seed=0)
    assert result.object.shape[0] == 2 and np.all(np.isfinite(result.phase)) and len(result.loss) == 3


def test_reconstruct_rejects_bad_input():
    with pytest.raises(AtomlocInputError, match="data must be"):
        reconstruct_ptycho(np.ones((4, 4, 8)), scan_sampling_A=0.3, energy_keV=300, semiangle_mrad=25,
                           angular_sampling_mrad=2.0)
    with pytest.raises(AtomlocInputError, match="slice_thickness_A"):
        reconstruct_ptycho(np.ones((4, 4, 8, 8)), scan_sampling_A=0.3, energy_keV=300, semiangle_mrad=25,
                           angular_sampling_mrad=2.0, n_slices=3)
    with pytest.raises(AtomlocInputError, match="exactly one"):
        reconstruct_ptycho(np.ones((4, 4, 8, 8)), scan_sampling_A=0.3, energy_keV=300, semiangle_mrad=25)


@pytest.fixture(scope="module")
def tiny_scan():
    """A noise-free abTEM scan of 2 x 1 rectangular MoS2 cells (6.3 x 5.5 Å, 418 positions; ~5 s)."""
    from atomloc.simulate.fourd import simulate_4dstem

    return simulate_4dstem("MoS2", repeats=(2, 1), scan_step_A=0.3, dose_e_per_A2=None, seed=0)


@pytest.fixture(scope="module")
def tiny_reconstruction(tiny_scan):
    return reconstruct_ptycho(tiny_scan.data, **tiny_scan.calibration(), n_iterations=20, batch_size=32, seed=0)


def test_same_seed_same_bytes(tiny_scan, tiny_reconstruction):
    # the workflow's promise (same config, same bytes) for the dose draw and the reconstruction (CPU)
    from atomloc.simulate.fourd import apply_dose

    a, _ = apply_dose(tiny_scan.data, 1e4, tiny_scan.scan_sampling_A, 3)
    b, _ = apply_dose(tiny_scan.data, 1e4, tiny_scan.scan_sampling_A, 3)
    assert np.array_equal(a, b)
    again = reconstruct_ptycho(tiny_scan.data, **tiny_scan.calibration(), n_iterations=20, batch_size=32, seed=0)
    assert np.array_equal(again.object, tiny_reconstruction.object) and np.array_equal(again.probe,
                                                                                        tiny_reconstruction.probe)


def test_simulation_calibration(tiny_scan):
    s = tiny_scan
    assert s.data.dtype == np.float32 and s.data.ndim == 4
    # The real step of the scan: the supercell is covered exactly (abTEM rounded the number of positions).
    extent = np.asarray(s.attrs["supercell_A"])
    assert np.allclose(np.array(s.scan_shape) * np.array(s.scan_sampling_A), extent)
    assert s.data.sum(axis=(2, 3)).mean() == pytest.approx(1.0, abs=0.01)  # collected fraction, no dose
    assert set(s.truth["element"]) == {"Mo", "S2"} and s.truth["light"].sum() == (s.truth["element"] == "S2").sum()


def refined_peak_A(image, x, y, sampling_A, radius_A=0.4):
    """The local maximum of ``image`` within ``radius_A`` of pixel (x, y), refined by a parabola, as (x, y) pixels."""
    r = int(np.ceil(radius_A / min(sampling_A)))
    i0, j0 = int(round(y)), int(round(x))
    win = image[i0 - r:i0 + r + 1, j0 - r:j0 + r + 1]
    a, b = np.unravel_index(np.argmax(win), win.shape)
    a, b = a + i0 - r, b + j0 - r
    dy = 0.5 * (image[a - 1, b] - image[a + 1, b]) / (image[a - 1, b] - 2 * image[a, b] + image[a + 1, b])
    dx = 0.5 * (image[a, b - 1] - image[a, b + 1]) / (image[a, b - 1] - 2 * image[a, b] + image[a, b + 1])
    return b + dx, a + dy


def test_truth_lands_on_phase_peaks(tiny_scan, tiny_reconstruction):
    """Scan pixels -> object pixels through the calibrated positions only: every true column (Mo and S2) sits
    within 0.1 Å of a phase maximum."""
    r = tiny_reconstruction
    xy_obj = r.scan_px_to_object_px(tiny_scan.truth_xy())
    assert np.allclose(r.object_px_to_scan_px(xy_obj), tiny_scan.truth_xy())
    sy, sx = r.object_sampling_A
    errors = []
    for x, y in xy_obj:
        px, py = refined_peak_A(r.phase, x, y, r.object_sampling_A)
        errors.append(np.hypot((px - x) * sx, (py - y) * sy))
    assert max(errors) < 0.1, errors
    # The phase on the scan grid has its maxima at the truth too (scan pixels of ~0.29 Å: within 0.5 px).
    on_scan = r.phase_on_scan_grid()
    assert on_scan.shape == tiny_scan.scan_shape
    same = phase_on_scan_grid(r.phase, object_sampling_A=r.object_sampling_A, object_origin_A=r.object_origin_A,
                              scan_sampling_A=r.scan_sampling_A, scan_origin_A=r.scan_origin_A,
                              scan_shape=r.scan_shape)
    assert np.array_equal(on_scan, same)
    h, w = on_scan.shape
    inside = [(x, y) for x, y in tiny_scan.truth_xy() if 2 <= x <= w - 3 and 2 <= y <= h - 3]
    assert inside
    for x, y in inside:
        px, py = refined_peak_A(on_scan, x, y, r.scan_sampling_A, radius_A=0.6)
        assert np.hypot(px - x, py - y) < 0.5


def test_4dstem_hdf5_round_trip(tmp_path, tiny_scan):
    path = tmp_path / "scan.h5"
    write_4dstem(path, tiny_scan)
    back = read_4dstem(path, load_clean=True)
    assert np.array_equal(back.data, tiny_scan.data) and np.array_equal(back.clean, tiny_scan.clean)
    for key in ("scan_sampling_A", "scan_origin_A", "reciprocal_sampling_per_A", "angular_sampling_mrad"):
        assert getattr(back, key) == getattr(tiny_scan, key)
    assert (back.energy_keV, back.semiangle_mrad, back.defocus_A) == (300.0, 25.0, 0.0)
    for key, value in tiny_scan.truth.items():
        assert np.array_equal(back.truth[key], value), key
    assert back.attrs["material"] == "MoS2"
    import h5py

    with h5py.File(path, "r") as f:
        assert f["data"].chunks == (1, *tiny_scan.data.shape[1:])
    # Same scan, same bytes.
    write_4dstem(tmp_path / "again.h5", tiny_scan)
    assert (tmp_path / "again.h5").read_bytes() == path.read_bytes()


def test_4dstem_bad_input(tmp_path):
    with pytest.raises(AtomlocInputError, match="not found"):
        read_4dstem(tmp_path / "missing.h5")
    import h5py

    bad = tmp_path / "nocal.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("data", data=np.zeros((2, 2, 4, 4), np.float32))
    with pytest.raises(AtomlocInputError, match=r"nocal\.h5: calibration attributes missing"):
        read_4dstem(bad)
    with pytest.raises(AtomlocInputError, match="scan_sampling_A must be > 0"):
        FourDSTEM(np.zeros((2, 2, 4, 4)), scan_sampling_A=0.0, scan_origin_A=0.0, reciprocal_sampling_per_A=0.1,
                  angular_sampling_mrad=2.0, energy_keV=300.0, semiangle_mrad=25.0)
    from atomloc.simulate.fourd import simulate_4dstem

    with pytest.raises(AtomlocInputError, match="detector_bin"):
        simulate_4dstem("MoS2", detector_bin=2)
    with pytest.raises(AtomlocInputError, match="material"):
        simulate_4dstem("unobtainium")


def test_virtual_images_peak_at_heavy_columns(tiny_scan):
    s = tiny_scan
    images = virtual_images(s.data, semiangle_mrad=s.semiangle_mrad, scan_sampling_A=s.scan_sampling_A,
                            angular_sampling_mrad=s.angular_sampling_mrad,
                            reciprocal_sampling_per_A=s.reciprocal_sampling_per_A)
    assert images["adf_mrad"][0] == 40.0 and images["adf_mrad"][1] <= 60.0
    heavy = s.truth_xy(light=False)
    # BF: the heavy columns scatter out of the disc, so they are its minima; ADF and iCoM: maxima.
    for name, sign in (("adf", 1.0), ("icom", 1.0), ("bf", -1.0)):
        image = sign * images[name]
        assert image.shape == s.scan_shape
        top = np.quantile(image, 0.9)
        for x, y in heavy:
            i, j = int(round(y)), int(round(x))
            near = image[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
            assert near.max() >= top, (name, x, y)
        # the brightest pixel is a Mo column (within one pixel)
        peak = np.unravel_index(np.argmax(image), image.shape)
        assert np.hypot(heavy[:, 0] - peak[1], heavy[:, 1] - peak[0]).min() <= 1.0, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_reconstruct_on_cuda(tiny_scan):
    r = reconstruct_ptycho(tiny_scan.data, **tiny_scan.calibration(), n_iterations=2, batch_size=32, device="cuda")
    assert np.all(np.isfinite(r.phase))
