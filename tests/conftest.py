import pytest

from atomloc.testing import mos2_frame


@pytest.fixture(scope="session")
def mos2_high_dose():
    return mos2_frame(electrons_per_px=2000.0, seed=11)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory):
    """Small AtomID-net and AtomSegNet checkpoints trained on simulated MoS2 tiles (truth labels).

    Returns {architecture: checkpoint path}; each trains in seconds on the CPU.
    """
    from atomloc.learn.data import TrainingSet, series_set
    from atomloc.learn.spec import TrainSpec
    from atomloc.learn.train import train_model
    from atomloc.locate.nets.models import save_checkpoint

    out = tmp_path_factory.mktemp("models")
    paths = {}
    for arch, target in (("atomid", "confidence"), ("atomsegnet", "gaussian_mask")):
        spec = TrainSpec(architecture=arch, target=target, base_channels=6, depth=2, epochs=14, batch_size=4,
                         lr=3e-3, lr_step_epochs=10, crop_px=64, val_frac=0.15, gaussian_mask_fwhm_A=0.6, seed=0)
        parts = []
        for k in range(6):
            s = mos2_frame(spacing_px=8.0 + k, shape=(128, 128), electrons_per_px=float(300 * (k + 1)),
                           rotation_deg=11.0 * k, seed=30 + k, n_frames=2)
            xy = [s.truth.positions(f) for f in range(2)]
            parts.append(series_set(s.frames, xy, s.attrs["pixel_size_pm"], spec))
        model, _, _ = train_model(TrainingSet.concat(parts), spec)
        paths[arch] = out / f"{arch}.pt"
        save_checkpoint(paths[arch], model, arch, {})
    return paths
