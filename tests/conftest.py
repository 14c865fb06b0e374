import numpy as np
import pytest

from atomloc.simulate import SeriesSpec, render_columns, simulate_series

MOS2_NN_A = 3.16 / np.sqrt(3)  # Mo-S2 column spacing of 2H-MoS2, Å


def mos2_frame(spacing_px=9.12, shape=(192, 192), electrons_per_px=400.0, rotation_deg=17.0, seed=0, n_frames=1):
    """A simulated 2H-MoS2 series whose Mo-S2 spacing is ``spacing_px`` pixels.

    The dose is set so that each pixel receives ``electrons_per_px`` electrons
    whatever the pixel size; the probe is in focus and free of astigmatism.
    """
    px_pm = 100 * MOS2_NN_A / spacing_px
    dose = electrons_per_px / (px_pm / 100) ** 2
    spec = SeriesSpec(material="MoS2", shape_px=tuple(shape), pixel_size_pm=px_pm, n_frames=n_frames,
                      rotation_deg=rotation_deg, dose_e_per_A2=(dose, dose), defocus_nm=(0.0, 0.0),
                      astigmatism_nm=0.0, seed=seed)
    return simulate_series(spec)


def truth_xy(series, frame=0):
    return np.column_stack([series["truth"]["x"][frame], series["truth"]["y"][frame]])


def square_lattice(spacing_px, shape=(160, 160), sigma_frac=0.2, counts=200.0, seed=0, angle_deg=12.0):
    """Poisson image of a rotated square lattice of equal Gaussian columns, and its truth."""
    rng = np.random.default_rng(seed)
    h, w = shape
    n = int(np.ceil(1.5 * max(h, w) / spacing_px)) + 2
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    t = np.deg2rad(angle_deg)
    x = spacing_px * (ii * np.cos(t) - jj * np.sin(t)) + w / 2 + rng.uniform(0, 1)
    y = spacing_px * (ii * np.sin(t) + jj * np.cos(t)) + h / 2 + rng.uniform(0, 1)
    keep = (x > -spacing_px) & (x < w + spacing_px) & (y > -spacing_px) & (y < h + spacing_px)
    x, y = x[keep].ravel(), y[keep].ravel()
    img = 5.0 + render_columns(shape, x, y, np.full(len(x), counts), sigma_frac * spacing_px)
    return rng.poisson(img).astype(np.float64), np.column_stack([x, y])


@pytest.fixture(scope="session")
def mos2_high_dose():
    return mos2_frame(electrons_per_px=2000.0, seed=11)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory):
    """Small AtomID-net and AtomSegNet checkpoints trained on simulated MoS2 tiles (truth labels).

    Returns {architecture: checkpoint path}; each trains in seconds on the CPU.
    """
    from atomloc.nets.models import save_checkpoint
    from atomloc.nets.spec import TrainSpec
    from atomloc.nets.train import TrainingSet, series_set, train_model

    out = tmp_path_factory.mktemp("models")
    paths = {}
    for arch, target in (("atomid", "confidence"), ("atomsegnet", "gaussian_mask")):
        spec = TrainSpec(architecture=arch, target=target, base_channels=6, depth=2, epochs=14, batch_size=4,
                         lr=3e-3, lr_step_epochs=10, crop_px=64, val_frac=0.15, gaussian_mask_fwhm_A=0.6, seed=0)
        parts = []
        for k in range(6):
            s = mos2_frame(spacing_px=8.0 + k, shape=(128, 128), electrons_per_px=float(300 * (k + 1)),
                           rotation_deg=11.0 * k, seed=30 + k, n_frames=2)
            xy = [truth_xy(s, f) for f in range(2)]
            parts.append(series_set(s["frames"], xy, s["attrs"]["pixel_size_pm"], spec))
        model, _, _ = train_model(TrainingSet.concat(parts), spec)
        paths[arch] = out / f"{arch}.pt"
        save_checkpoint(paths[arch], model, arch, {})
    return paths
