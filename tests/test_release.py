"""Pretrained weights shipped in the package, scale normalisation, the noise gate, the release library."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from atomloc.analysis.metrics import score_detections
from atomloc.core.errors import AtomlocInputError
from atomloc.core.image import resample, unresample_xy
from atomloc.locate import locate
from atomloc.locate.learned import (
    RESCALE_MARGIN,
    band_factor,
    gate_by_noise,
    network_scale,
    shipped_model,
    trained_band,
)
from atomloc.locate.refine import refine_peaks
from atomloc.simulate.library import LibrarySpec, render_library_image
from atomloc.simulate.realism import EFFECTS, draw_effects, quantise
from atomloc.simulate.render import render_columns
from atomloc.testing import mos2_frame, square_lattice

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("atomid", "atomsegnet")


# --- scale normalisation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [0.3, 0.55, 1.6, 2.5])
def test_resampling_maps_positions_back_exactly(factor):
    rng = np.random.default_rng(1)
    xy = rng.uniform(25, 175, size=(6, 2))
    image = render_columns((200, 211), xy[:, 0], xy[:, 1], np.ones(6), 4.0)
    scaled, factors = resample(image, factor)
    assert scaled.shape == (round(200 * factor), round(211 * factor))
    expected = np.column_stack([(xy[:, 0] + 0.5) * factors[1] - 0.5, (xy[:, 1] + 0.5) * factors[0] - 0.5])
    fitted = refine_peaks(scaled, np.rint(expected[:, ::-1]).astype(int), 8 * factor, 4 * factor)
    back = unresample_xy(fitted[["x", "y"]].to_numpy(), factors)
    assert len(back) == 6
    assert np.abs(back - xy).max() <= 0.05


def test_band_factor_leaves_the_band_alone_and_clips_into_it():
    band = (5.0, 16.0)
    assert band_factor(9.0, band) == 1.0
    assert band_factor(3.0, band) == pytest.approx(5.0 * RESCALE_MARGIN / 3.0)
    assert band_factor(60.0, band) == pytest.approx(16.0 / RESCALE_MARGIN / 60.0)
    assert trained_band({"library": {"spacing_px_range": [5, 16]}}) == (5.0, 16.0)
    assert trained_band({}) is None


@pytest.mark.parametrize("spacing_px", [3.0, 8.0, 25.0, 60.0])
def test_measured_spacing_lands_in_the_band(spacing_px):
    image, _ = square_lattice(spacing_px, shape=(512, 512), counts=30.0, seed=2)
    factor = network_scale(image, "auto", {"library": {"spacing_px_range": [5.0, 16.0]}}, "auto")
    assert 5.0 * RESCALE_MARGIN * 0.97 <= spacing_px * factor <= 16.0 / RESCALE_MARGIN * 1.03
    assert network_scale(image, "auto", {"library": {"spacing_px_range": [5.0, 16.0]}}, "none") == 1.0


def test_no_lattice_leaves_the_scale_alone():
    noise = np.random.default_rng(0).poisson(20.0, size=(256, 256)).astype(float)
    assert network_scale(noise, "auto", {"library": {"spacing_px_range": [5.0, 16.0]}}, "auto") == 1.0
    assert network_scale(noise, None, {"library": {"spacing_px_range": [5.0, 16.0]}}, "auto") == 1.0


# --- the noise gate -------------------------------------------------------------------------------------

def test_noise_gate_drops_detections_on_noise_and_keeps_columns():
    import pandas as pd

    image, truth = square_lattice(10.0, shape=(200, 200), counts=100.0, seed=3)
    rng = np.random.default_rng(4)
    fake = rng.uniform(0, 199, size=(200, 2))
    noise = rng.poisson(30.0, size=image.shape).astype(float)
    kept = gate_by_noise(noise, pd.DataFrame({"x": fake[:, 0], "y": fake[:, 1]}))
    assert len(kept) <= 2
    # no lattice: a per-image false-alarm rate, and a planted bright atom still passes
    noise[50:53, 60:63] += 60.0
    fake = np.vstack([fake, [[61.0, 51.0]]])
    kept = gate_by_noise(noise, pd.DataFrame({"x": fake[:, 0], "y": fake[:, 1]}), lattice=False)
    assert len(kept) == 1 and abs(kept.x[0] - 61) < 1.5 and abs(kept.y[0] - 51) < 1.5
    cols = gate_by_noise(image, pd.DataFrame({"x": truth[:, 0] + 0.3, "y": truth[:, 1] - 0.3}))
    assert score_detections(cols[["x", "y"]].to_numpy(), truth, image.shape).recall >= 0.98



def test_noise_gate_judges_at_the_image_spacing_not_the_detections():
    # a network firing on noise between the columns shortens the detections' own spacing; at the
    # image's spacing the gate keeps the columns and drops the noise
    import pandas as pd

    image, truth = square_lattice(12.0, shape=(240, 240), counts=25.0, seed=5)
    rng = np.random.default_rng(6)
    fake = rng.uniform(0, 239, size=(3 * len(truth), 2))
    found = pd.DataFrame({"x": np.r_[truth[:, 0], fake[:, 0]], "y": np.r_[truth[:, 1], fake[:, 1]]})
    inside = found[(found.x > -0.5) & (found.x < 239.5) & (found.y > -0.5) & (found.y < 239.5)]
    kept = gate_by_noise(image, inside, 12.0)
    score = score_detections(kept[["x", "y"]].to_numpy(), truth, image.shape)
    assert score.precision >= 0.95 and score.recall >= 0.95

def test_noise_gate_keeps_both_columns_of_a_dumbbell():
    # dumbbells 5 px apart on a 14 px lattice (GaAs [110]-like): at the image's spacing the gate merged each
    # pair; the detections' own, shared neighbour distance keeps both, and noise detections still go
    import pandas as pd

    from atomloc.locate.learned import _dumbbells
    from atomloc.simulate.render import render_columns

    lattice = square_lattice(14.0, shape=(224, 224), seed=7)[1]
    truth = np.vstack([lattice, lattice + [5.0 * np.cos(0.3), 5.0 * np.sin(0.3)]])
    image = np.random.default_rng(8).poisson(5.0 + render_columns((224, 224), truth[:, 0], truth[:, 1],
                                                                  np.full(len(truth), 400.0), 1.2)).astype(float)
    inside = truth[(truth.min(axis=1) > 0) & (truth.max(axis=1) < 223)]
    kept = gate_by_noise(image, pd.DataFrame({"x": inside[:, 0], "y": inside[:, 1]}), 14.0)
    score = score_detections(kept[["x", "y"]].to_numpy(), truth, image.shape, spacing_px=5.0)
    assert score.recall >= 0.98, score
    assert _dumbbells(image, inside, 5.0)
    assert not _dumbbells(image, np.random.default_rng(9).uniform(0, 224, size=(400, 2)), 6.0)
    # a much weaker partner is a sublattice for the weak-neighbour rule, not half a dumbbell
    weak = np.random.default_rng(8).poisson(5.0 + render_columns(
        (224, 224), truth[:, 0], truth[:, 1], np.r_[np.full(len(lattice), 400.0), np.full(len(lattice), 100.0)],
        1.2)).astype(float)
    assert not _dumbbells(weak, inside, 5.0)


# --- the shipped weights ---------------------------------------------------------------------------------

@pytest.mark.parametrize("architecture", SHIPPED)
def test_shipped_weights_are_small_and_described(architecture):
    path = shipped_model(architecture)
    assert path.is_file(), f"{path}: run snakemake --configfile workflow/configs/release.yaml release"
    assert path.stat().st_size < 8e6
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["architecture"]["name"] == architecture
    assert trained_band(meta) == tuple(meta["library"]["spacing_px_range"])
    assert meta["library"]["seed"] != meta["validation_library"]["seed"]
    point = meta["operating_point"]
    assert 0 < point["min_confidence" if architecture == "atomid" else "threshold"] < 1
    assert point["val_f1"] == pytest.approx(max(point["f1"]), abs=1e-4)
    assert len(meta["commit"]) == 40
    band = trained_band(meta)
    assert band[0] <= meta["inference"]["spacing_px"] <= band[1]


@pytest.mark.parametrize("architecture", SHIPPED)
@pytest.mark.parametrize("spacing_px, tta", [(7.0, False), (24.0, False), (7.0, True)])
def test_shipped_weights_find_the_columns(architecture, spacing_px, tta):
    # loads with weights_only=True (load_checkpoint); no --model needed; tta: D4 test-time averaging
    series = mos2_frame(spacing_px=spacing_px, shape=(256, 256), electrons_per_px=500.0, seed=5)
    found = locate(series.frames[0], architecture, tta=tta)
    score = score_detections(found[["x", "y"]].to_numpy(), series.truth.positions(0), series.frames[0].shape,
                             spacing_px=spacing_px)
    assert score.recall >= 0.95 and score.precision >= 0.95, score


@pytest.mark.parametrize("architecture", SHIPPED)
def test_shipped_weights_stay_quiet_on_noise_and_vacuum(architecture):
    rng = np.random.default_rng(6)
    for image in (rng.poisson(15.0, size=(256, 256)).astype(float), rng.normal(20.0, 1.0, size=(256, 256))):
        found = locate(image, architecture)
        # a lattice of 8 px spacing would have ~1000 columns here; 0.01 false alarms per image allowed
        assert len(found) == 0


def test_missing_shipped_weights_say_how_to_get_them(tmp_path, monkeypatch):
    import atomloc.locate.learned as learned

    monkeypatch.setattr(learned, "SHIPPED_MODELS", tmp_path)
    with pytest.raises(AtomlocInputError, match="atomid: no model given and no pretrained weights at"):
        locate(np.random.default_rng(0).random((32, 32)), "atomid")


def test_release_config_validates():
    from snakemake.utils import validate

    # as snakemake --configfile workflow/configs/release.yaml reads it: over the default config
    release = yaml.safe_load((REPO / "workflow" / "configs" / "release.yaml").read_text())["release"]
    config = {**yaml.safe_load((REPO / "config.yaml").read_text()), "release": release}
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    LibrarySpec.from_mapping(release["library"]).check()
    assert release["validation"]["seed"] != release["library"]["seed"]
    assert "NiO_001" not in release["library"]["structures"]
    for name, restorer in release["restorers"].items():  # a restorer's own library: the release one, overridden
        spec = LibrarySpec.from_mapping({**release["library"], **restorer.get("library", {})})
        spec.check()
        assert spec.restoration_labels and "NiO_001" not in spec.structures, name


# --- the release library's real-data effects -------------------------------------------------------------

def test_no_effects_without_probability():
    assert draw_effects(0.0, np.random.default_rng(0)) == {}
    assert set(draw_effects(1.0, np.random.default_rng(0))) == set(EFFECTS)


def test_all_effects_keep_labels_consistent():
    spec = LibrarySpec(shape_px=128, effects_prob=1.0, spacing_px_range=(8.0, 8.0),
                       electrons_per_px_range=(5000.0, 5000.0))
    for seed in range(3):
        item = render_library_image(spec, "MoS2", np.random.default_rng(seed))
        image = item["image"]
        assert set(item["effects"].split(",")) == set(EFFECTS)
        assert np.array_equal(image, np.rint(image)) and image.min() >= 0 and image.max() <= 255  # 8-bit export
        assert len(item["positions"]) > 0
        # no label in a vacuum hole (>= 5 % of the field, its darkest part): the smoothed image at
        # every label is above its 5th percentile, and at almost every one above the median
        # (the S2 columns of MoS2 can be dim at a high contrast exponent)
        from scipy import ndimage

        smooth = ndimage.gaussian_filter(image.astype(float), 1.5)
        iy, ix = np.rint(item["positions"][:, 1]).astype(int), np.rint(item["positions"][:, 0]).astype(int)
        assert np.all(smooth[iy, ix] > np.percentile(smooth, 5))
        assert np.mean(smooth[iy, ix] > np.median(smooth)) >= 0.9


def test_quantise_saturates_outside_its_percentiles():
    x = np.linspace(0, 1, 1001)
    q = quantise(x, 1.0, 99.0)
    assert q.min() == 0 and q.max() == 255
    assert np.sum(q == 255) == pytest.approx(11, abs=1)
