"""Restorations: the classical peers and the learned restorer against the noise-free truth, restore-then-locate
wiring, the columns a restoration must not create, and the ``atomloc restore`` command."""

import numpy as np
import pytest

from atomloc.analysis.restoration import (
    background_free_truth,
    image_quality,
    quality_table,
    restoration_effect,
    restoration_quality,
    truth_kind,
)
from atomloc.core.errors import AtomlocInputError
from atomloc.core.image import render_columns
from atomloc.locate import available_restorations, get_method, locate, restore
from atomloc.locate.learned import shipped_model
from atomloc.locate.registry import split_method

SPACING = 10.0
SHIPPED = all(shipped_model(n).is_file() for n in ("denoise", "denoise_bg", "superres"))


def _lattice(n=96, spacing=SPACING, peak=40.0, background=10.0, sigma=1.8):
    """A square lattice: expected counts (columns + a constant background) and the columns alone."""
    c = np.arange(spacing / 2, n, spacing)
    x, y = np.meshgrid(c, c)
    columns = render_columns((n, n), x.ravel(), y.ravel(), np.full(x.size, peak), sigma)
    return columns + background, columns, np.column_stack([x.ravel(), y.ravel()])


def test_every_restoration_is_registered_and_methods_compose():
    assert {"denoise", "denoise_bg", "superres", "nl_means", "tv", "wavelet", "bm3d", "rl", "bg"} <= \
        set(available_restorations())
    assert split_method("gaussfit@bm3d+bg") == ("gaussfit", "bm3d+bg")
    assert split_method("gaussfit") == ("gaussfit", None)
    assert get_method("gaussfit@bm3d+bg").name == "gaussfit"
    with pytest.raises(AtomlocInputError, match="'nope' not registered"):
        get_method("gaussfit@tv+nope")
    with pytest.raises(AtomlocInputError, match="not registered"):
        locate(np.random.default_rng(0).poisson(5.0, (64, 64)).astype(float), "gaussfit@nope")


@pytest.mark.parametrize("name", ["nl_means", "tv", "wavelet", "bm3d"])
def test_classical_denoisers_come_closer_to_the_expected_image(name):
    clean, _, _ = _lattice()
    noisy = np.random.default_rng(1).poisson(clean).astype(np.float64)
    out = restore(noisy, name, SPACING)
    raw, restored = image_quality(noisy, clean)["psnr_db"], image_quality(out, clean)["psnr_db"]
    assert out.shape == noisy.shape
    assert restored > raw + 2.0, (name, raw, restored)


def test_background_removal_leaves_the_columns():
    clean, columns, _ = _lattice(background=25.0)
    out = restore(clean, "bg", SPACING)
    # between the columns the background is gone (within 5 % of the peak), the peaks keep their height
    assert abs(np.median(out - columns)) < 0.05 * columns.max()
    assert out.max() == pytest.approx(columns.max(), rel=0.1)
    # a chain: denoise, then remove the background
    noisy = np.random.default_rng(2).poisson(clean).astype(np.float64)
    chained = restore(noisy, "tv+bg", SPACING)
    assert image_quality(chained, columns)["psnr_db"] > image_quality(noisy, columns)["psnr_db"] + 3.0


def test_restoration_quality_scores_each_restoration_against_its_own_truth():
    clean, columns, _ = _lattice()
    frames = np.random.default_rng(3).poisson(np.stack([clean, clean])).astype(np.float64)
    rows = restoration_quality(frames, np.stack([clean, clean]), np.stack([columns, columns]), SPACING,
                               ["tv", "tv+bg"], lambda im, name, s: restore(im, name, s))
    assert set(zip(rows.restoration, rows.truth)) == {("none", "no_noise"), ("none", "no_background"),
                                                      ("tv", "no_noise"), ("tv+bg", "no_background")}
    assert truth_kind("bm3d+bg") == "no_background" and truth_kind("denoise") == "no_noise"
    table = quality_table(rows, by=("restoration", "truth")).set_index(["restoration", "truth"])
    assert (table["n_images"] == 2).all() and (table["psnr_db_lo"] <= table["psnr_db_mean"]).all()
    # each restoration beats the raw frame against its own truth
    assert table.loc[("tv", "no_noise"), "psnr_db_mean"] > table.loc[("none", "no_noise"), "psnr_db_mean"] + 2
    assert table.loc[("tv+bg", "no_background"), "psnr_db_mean"] > \
        table.loc[("none", "no_background"), "psnr_db_mean"] + 2
    with pytest.raises(AtomlocInputError, match="sharpens"):
        truth_kind("tv+superres")
    assert truth_kind("bg+tv") == "no_background"
    # the background-free truth of a simulated frame: expected counts minus dose x px^2 x background fraction
    # (1000 e/Å² x 0.04 Å² x 0.005 = 0.2)
    np.testing.assert_allclose(background_free_truth(np.full((2, 2), 10.0), 1000.0, 20.0, 0.005), 9.8)


def test_restoration_quality_runs_a_shared_chain_prefix_once():
    clean, columns, _ = _lattice()
    frames = np.random.default_rng(5).poisson(np.stack([clean, clean])).astype(np.float64)
    calls = []

    def counted(image, name, spacing):
        calls.append(name)
        return restore(image, name, spacing)

    rows = restoration_quality(frames, np.stack([clean, clean]), np.stack([columns, columns]), SPACING,
                               ["tv+bg", "tv", "tv+bg+tv"], counted)
    # per frame: tv once, bg once, the last tv once (not tv three times and bg twice)
    assert calls == ["tv", "bg", "tv"] * 2
    # the numbers of each chain restored in one go
    for name in ("tv+bg", "tv", "tv+bg+tv"):
        got = rows[(rows.restoration == name) & (rows.frame == 1)].iloc[0]
        direct = image_quality(restore(frames[1], name, SPACING), (clean if name == "tv" else columns))
        assert got["psnr_db"] == pytest.approx(direct["psnr_db"], abs=1e-9), name
    # a chain's time includes its shared prefix
    by = rows[rows.frame == 0].set_index("restoration")["time_s"]
    assert by["tv+bg+tv"] >= by["tv+bg"] >= by["tv"] > 0


def test_restoration_effect_is_paired_by_frame():
    import pandas as pd

    rng = np.random.default_rng(4)
    base = pd.DataFrame({"dataset": "d", "frame": np.arange(20), "material": "MoS2", "dose_e_per_A2": 1e3,
                         "f1": rng.uniform(0.5, 0.9, 20), "rmse_pm": rng.uniform(5, 10, 20), "method": "gaussfit"})
    better = base.assign(method="gaussfit@tv", f1=base.f1 + 0.05, rmse_pm=base.rmse_pm + 0.0)
    effect = restoration_effect(pd.concat([base, better]), n_boot=200)
    row = effect.iloc[0]
    assert row["method"] == "gaussfit@tv" and row["restoration"] == "tv" and row["n_images"] == 20
    assert row["d_f1_mean"] == pytest.approx(0.05) and row["helps_f1"] == "yes"
    assert row["helps_rmse_pm"] == "tie"


@pytest.mark.parametrize("options", [{}, {"noise_channel": True, "gated": True}])
def test_restorer_learns_to_reduce_the_error_on_held_out_images(options):
    """A tiny restorer trained on a tiny library beats the raw image on held-out library images (also with
    the noise-level channel and the gated head)."""
    from atomloc.learn.data import library_set
    from atomloc.learn.spec import TrainSpec
    from atomloc.learn.train import restoration_psnr, train_model
    from atomloc.simulate.library import LibrarySpec, synthesize_library

    lib = LibrarySpec(structures=("MoS2", "SrTiO3_001", "Pt_001"), n_images=48, shape_px=48,
                      spacing_px_range=(6.0, 10.0), electrons_per_px_range=(3.0, 10.0), restoration_labels=True)
    spec = TrainSpec(architecture="restorer", target="no_noise", base_channels=8, depth=2, epochs=8, batch_size=8,
                     lr=3e-3, crop_px=48, val_frac=0.2, **options)
    model, history, _ = train_model(library_set(synthesize_library(lib), spec), spec)
    held_out = synthesize_library(LibrarySpec(**{**lib.__dict__, "n_images": 12, "seed": 9}))
    psnr = restoration_psnr(model, library_set(held_out, spec))
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert psnr["restored_db"] > psnr["raw_db"] + 2.0, psnr  # measured: 14.5 dB vs 11.6 dB raw


def test_noise_level_is_the_noise_sigma_in_the_networks_units():
    from atomloc.locate.nets.models import input_scaling, noise_level, normalise_input

    clean, _, _ = _lattice(n=128)
    image = clean + np.random.default_rng(0).normal(0.0, 2.0, clean.shape)
    level = noise_level(image)
    assert level == pytest.approx(2.0 / input_scaling(image)[1], rel=0.1)
    assert noise_level(normalise_input(image)) == pytest.approx(level, rel=1e-4)  # affine: the raw image's level
    assert noise_level(5.0 * image + 100.0) == pytest.approx(level, rel=1e-4)


def test_noise_channel_gated_restorer_round_trips_and_tiles(tmp_path):
    """The noise level enters as a constant second channel (one per image, so tiles agree), the sidecar
    records both options, and a bad option fails in one line naming the file."""
    import json

    import torch

    from atomloc.learn.spec import TrainSpec
    from atomloc.locate.nets import ATOMID, RESTORER
    from atomloc.locate.nets.models import (
        build_model,
        load_checkpoint,
        noise_level,
        normalise_input,
        predict,
        save_checkpoint,
        with_noise_channel,
    )

    torch.manual_seed(0)
    net = build_model(RESTORER, 4, 2, noise_channel=True, gated=True).eval()
    with torch.no_grad():  # make the noise channel and the gate matter
        net.down[0][0].weight.normal_(0.0, 0.5)
        net.gate.weight.normal_(0.0, 0.5)
    image = np.random.default_rng(1).poisson(20.0, (90, 100)).astype(np.float64)
    whole, _ = predict(net, image)
    tiled, _ = predict(net, image, max_tile_px=48, margin_px=24)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    x = torch.zeros(2, 1, 8, 8)
    levels = torch.tensor([0.1, 0.3])
    both = with_noise_channel(x, levels)
    assert both.shape == (2, 2, 8, 8) and float(both[1, 1, 3, 5]) == pytest.approx(0.3)
    assert with_noise_channel(x, None) is x
    # the level is an input: another level, another output
    inp = torch.from_numpy(normalise_input(image[:88, :96]))[None, None]
    with torch.no_grad():
        a = net(with_noise_channel(inp, torch.tensor([noise_level(image[:88, :96])])))
        b = net(with_noise_channel(inp, torch.tensor([0.0])))
    assert float((a - b).abs().max()) > 1e-3

    path = tmp_path / "r.pt"
    save_checkpoint(path, net, RESTORER, {})
    arch = json.loads(path.with_suffix(".json").read_text())["architecture"]
    assert arch["noise_channel"] is True and arch["gated"] is True
    loaded, _ = load_checkpoint(path, RESTORER)
    np.testing.assert_array_equal(predict(loaded, image)[0], whole)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"]["gated"] = "yes"
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(AtomlocInputError, match=r"r\.json: .*architecture\.gated='yes'"):
        load_checkpoint(path, RESTORER)
    with pytest.raises(AtomlocInputError, match="restorer's options"):
        build_model(ATOMID, 4, 2, noise_channel=True)
    with pytest.raises(AtomlocInputError, match="noise_channel: is a restorer's option"):
        TrainSpec(architecture=ATOMID, noise_channel=True).check()


def test_range_losses_weigh_each_image_by_its_target_range():
    import torch

    from atomloc.learn.spec import TrainSpec
    from atomloc.learn.train import RANGE_FLOOR, restorer_loss

    target = torch.zeros(3, 1, 4, 4)
    target[0, 0, 0, 0] = 2.0  # range 2
    target[1, 0, 1, 1] = 0.5  # range 0.5
    # image 2: no columns, range 0 -> the floor
    pred = target + torch.tensor([0.2, 0.1, 0.05]).view(3, 1, 1, 1)
    mse = torch.tensor([0.04, 0.01, 0.0025])
    assert float(restorer_loss(pred, target)) == pytest.approx(float(mse.mean()))
    expected = (mse / torch.tensor([2.0, 0.5, RANGE_FLOOR]) ** 2).mean()
    assert float(restorer_loss(pred, target, "range_mse")) == pytest.approx(float(expected))
    # psnr: minus the images' mean PSNR, each with its target's range (floored), as image_quality scores it
    from skimage.metrics import peak_signal_noise_ratio

    psnr = [peak_signal_noise_ratio(t[0].numpy(), p[0].numpy(), data_range=float(np.ptp(t[0].numpy())))
            for p, t in zip(pred[:2], target[:2])]
    psnr.append(10 * np.log10(RANGE_FLOOR ** 2 / 0.0025))
    assert float(restorer_loss(pred, target, "psnr")) == pytest.approx(-np.mean(psnr), rel=1e-5)
    with pytest.raises(AtomlocInputError, match="restorer_loss: must be one of"):
        TrainSpec(architecture="restorer", target="no_noise", restorer_loss="l1").check()


def test_library_set_scales_the_targets_like_their_images():
    from atomloc.learn.data import library_set
    from atomloc.learn.spec import TrainSpec
    from atomloc.locate.nets.models import input_scaling
    from atomloc.simulate.library import LibrarySpec, synthesize_library

    lib = synthesize_library(LibrarySpec(structures=("MoS2",), n_images=2, shape_px=48, restoration_labels=True))
    for target, shifted in (("no_noise", True), ("no_background_no_noise", False)):
        data = library_set(lib, TrainSpec(architecture="restorer", target=target, crop_px=48))
        lo, scale = input_scaling(lib["images"][0])
        expected = (lib[target][0] - (lo if shifted else 0.0)) / scale
        np.testing.assert_allclose(data.targets[0], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(AtomlocInputError, match="must be one of"):
        TrainSpec(architecture="restorer", target="confidence").check()


@pytest.mark.skipif(not SHIPPED, reason="the restorer weights are made by the release target")
@pytest.mark.parametrize("name", ["denoise", "denoise_bg", "superres"])
def test_shipped_restorers_run_and_keep_the_image_units(name):
    clean, columns, xy = _lattice(peak=200.0, background=40.0)
    noisy = np.random.default_rng(5).poisson(clean).astype(np.float64)
    out = restore(noisy, name, SPACING)
    assert out.shape == noisy.shape and np.isfinite(out).all()
    truth = clean if name == "denoise" else columns
    if name != "superres":  # super-resolution sharpens: its truth is narrower columns
        assert image_quality(out, truth)["psnr_db"] > image_quality(noisy, truth)["psnr_db"]
    # columns stay where they are, in the image's units
    found = locate(noisy, f"gaussfit@{name}", spacing_px=SPACING)
    from atomloc.analysis.metrics import score_detections

    assert score_detections(found[["x", "y"]].to_numpy(), xy, noisy.shape).f1 > 0.95


@pytest.mark.skipif(not SHIPPED, reason="the restorer weights are made by the release target")
def test_tta_restoration_is_d4_equivariant_and_closer_to_the_truth(tmp_path):
    from atomloc.cli import main
    from atomloc.locate.restore import learned_restore

    clean, _, _ = _lattice(n=64, peak=200.0, background=40.0)
    noisy = np.random.default_rng(8).poisson(clean).astype(np.float64)
    plain = learned_restore(noisy, "denoise", rescale="none")
    averaged = learned_restore(noisy, "denoise", rescale="none", tta=True)
    # the average over the eight rotations and mirror images commutes with them (64 px: no uneven padding)
    for turn in (np.rot90, np.fliplr):
        back = learned_restore(turn(noisy), "denoise", rescale="none", tta=True)
        assert np.allclose(back, turn(averaged), atol=1e-3 * np.ptp(averaged))
    assert np.abs(plain - averaged).max() > 1e-2 * np.ptp(averaged)  # it does average something
    gain = []  # over noise draws: closer to the truth on average (+0.25 dB here; one draw of four loses 0.06)
    for seed in (8, 9, 10, 11):
        draw = np.random.default_rng(seed).poisson(clean).astype(np.float64)
        gain.append(image_quality(learned_restore(draw, "denoise", rescale="none", tta=True), clean)["psnr_db"]
                    - image_quality(learned_restore(draw, "denoise", rescale="none"), clean)["psnr_db"])
    assert np.mean(gain) > 0.1
    path, out = tmp_path / "frame.npy", tmp_path / "restored.npy"
    np.save(path, noisy.astype(np.float32))
    assert main(["restore", str(path), "--restoration", "denoise", "--spacing-px", "10", "--tta",
                 "--out", str(out)]) == 0
    assert np.allclose(np.load(out), restore(noisy, "denoise", SPACING, tta=True), atol=1e-3 * np.ptp(averaged))


@pytest.mark.parametrize("name", [pytest.param("denoise_bg", marks=pytest.mark.skipif(not SHIPPED, reason="no weights")),
                                  pytest.param("superres", marks=pytest.mark.skipif(not SHIPPED, reason="no weights")),
                                  "bm3d", "nl_means", "rl"])
def test_a_restored_image_does_not_create_columns(name):
    """On pure noise, restore-then-locate stays within 1 % of a lattice's columns (the issue's limit)."""
    rng = np.random.default_rng(6)
    allowed = 0.01 * 128 ** 2 / 8.0 ** 2
    for image in (rng.poisson(20.0, (128, 128)).astype(float), 100.0 + rng.normal(0, 2.0, (128, 128))):
        found = locate(image, f"gaussfit@{name}", spacing_px=8.0)
        assert len(found) <= allowed, (name, len(found))


def test_cli_restore_writes_an_image(tmp_path):
    import tifffile

    from atomloc.cli import main

    clean, _, _ = _lattice()
    path = tmp_path / "frame.npy"
    np.save(path, np.random.default_rng(7).poisson(clean).astype(np.float32))
    out = tmp_path / "restored.tif"
    assert main(["restore", str(path), "--model", "tv+bg", "--spacing-px", "10", "--out", str(out)]) == 0
    restored = tifffile.imread(out)
    assert restored.shape == clean.shape and restored.dtype == np.float32
    assert main(["restore", str(path), "--restoration", "tv+bg", "--spacing-px", "10", "--out", str(out)]) == 0
    np.testing.assert_array_equal(tifffile.imread(out), restored)
    assert main(["restore", str(path), "--restoration", "nope", "--out", str(tmp_path / "x.tif")]) == 2
    # a --model that names no restoration is a checkpoint file, which must exist
    assert main(["restore", str(path), "--model", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.tif")]) == 2
    assert main(["restore", str(path), "--model", "tv", "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "x.png").exists()


def test_locate_series_gives_a_frame_without_a_lattice_the_series_spacing():
    from atomloc.analysis.metrics import score_detections
    from atomloc.locate import locate_series

    clean, _, xy = _lattice(peak=200.0, background=20.0)
    rng = np.random.default_rng(8)
    frames = np.stack([rng.poisson(clean), rng.poisson(clean), rng.poisson(np.full_like(clean, 20.0))]).astype(float)
    positions, seconds = locate_series(frames, "gaussfit@tv")
    assert len(seconds) == 3
    for k in (0, 1):
        found = positions[positions.frame == k][["x", "y"]].to_numpy()
        assert score_detections(found, xy, clean.shape).f1 > 0.95
    assert (positions.frame == 2).sum() <= 1  # the flat frame (92 lattice cells): at most one false alarm


@pytest.mark.parametrize("name,shift", [("denoise", True), ("denoise_bg", False)])
@pytest.mark.parametrize("spacing", [10.0, 40.0])
def test_learned_restore_maps_the_network_units_back_to_the_image(tmp_path, name, shift, spacing):
    """An identity restorer (a zero head: output = input) returns the image itself for denoise and the
    image minus its low percentile for the background-free targets, with and without band resampling."""
    import torch

    from atomloc.locate.nets import RESTORER
    from atomloc.locate.nets.models import build_model, input_scaling, save_checkpoint
    from atomloc.locate.restore import learned_restore

    net = build_model(RESTORER, 4, 2)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, net, RESTORER, {"restoration": name, "library": {"spacing_px_range": [5.0, 16.0]}})
    clean, _, _ = _lattice(n=128, peak=200.0, background=40.0)
    image = np.random.default_rng(9).poisson(clean).astype(np.float64)
    out = learned_restore(image, name, spacing, model=str(path))
    if spacing == 10.0:  # inside the band: no resampling, exact
        lo, _ = input_scaling(image)
        np.testing.assert_allclose(out, image if shift else image - lo, rtol=1e-5, atol=1e-3)
    else:  # resampled into the band (x 0.32) and back: the image blurred, in the same units
        from atomloc.core.image import resample
        from atomloc.locate.learned import band_factor

        scaled, _ = resample(image, band_factor(spacing, (5.0, 16.0)))
        lo, _ = input_scaling(scaled)
        assert out.shape == image.shape
        expected = image.mean() - (0.0 if shift else lo)
        assert abs(out.mean() - expected) < 0.02 * image.mean()
    with pytest.raises(AtomlocInputError, match="restorer, but"):
        learned_restore(image, "superres", spacing, model=str(path))


@pytest.mark.parametrize("spacing,before", [(2.5, True), (10.0, False), (40.0, False)])
def test_a_noise_channel_restorer_is_told_the_noise_of_the_image_it_was_given(tmp_path, monkeypatch, spacing,
                                                                              before):
    """Up-sampled into the band (x 2), the image's noise is no longer white and noise_level would read
    about a tenth of it: the network gets the level of the image before; otherwise the one it sees."""
    from atomloc.locate.nets import RESTORER, models
    from atomloc.locate.restore import learned_restore

    net = models.build_model(RESTORER, 4, 2, noise_channel=True, gated=True)
    path = tmp_path / "denoise.pt"
    models.save_checkpoint(path, net, RESTORER,
                           {"restoration": "denoise", "library": {"spacing_px_range": [5.0, 16.0]}})
    image = np.random.default_rng(3).normal(100.0, 5.0, (96, 96))
    seen = {}
    real_predict = models.predict

    def spy(model, images, **kwargs):
        levels = kwargs.get("noise_levels")
        seen["level"] = models.noise_level(images) if levels is None else float(levels[0])
        seen["shape"] = np.shape(images)
        return real_predict(model, images, **kwargs)

    monkeypatch.setattr(models, "predict", spy)
    out = learned_restore(image, "denoise", spacing, model=str(path))
    assert out.shape == image.shape
    assert (seen["shape"][0] > 96) == (spacing < 5.0)
    if before:
        assert seen["level"] == pytest.approx(models.noise_level(image), rel=1e-6)
    assert seen["level"] == pytest.approx(models.noise_level(image), rel=0.3)
