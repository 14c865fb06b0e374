import json

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from atomloc.core.errors import AtomlocInputError
from atomloc.learn.data import TrainingSet, series_set
from atomloc.learn.spec import TrainSpec
from atomloc.learn.train import train_model
from atomloc.locate.nets.heads import (
    box_iou,
    local_maxima,
    nms_head,
    nms_squares,
    otsu_centroid_head,
    subpixel_parabola,
)
from atomloc.locate.nets.models import (
    atomid_loss,
    build_model,
    chi_square_loss,
    fold_batch_norm,
    load_checkpoint,
    native_bf16,
    predict,
    save_checkpoint,
    use_bf16,
)
from atomloc.locate.registry import locate
from atomloc.simulate.library import peak_map
from atomloc.simulate.render import render_columns
from atomloc.testing import square_lattice

# --- NMS head ---------------------------------------------------------------------------------------

def test_box_iou_edge_cases():
    assert box_iou(np.array(0.0), np.array(0.0), 4.0) == pytest.approx(1.0)
    assert box_iou(np.array(4.0), np.array(0.0), 4.0) == pytest.approx(0.0)  # touching edges
    assert box_iou(np.array(1.0), np.array(0.0), 4.0) == pytest.approx(12 / 20)
    assert box_iou(np.array(1.0), np.array(1.0), 4.0) == pytest.approx(9 / 23)


def test_nms_suppresses_overlapping_boxes_and_keeps_the_stronger():
    xy = np.array([[10.0, 10.0], [11.0, 10.0], [20.0, 10.0]])
    kept = nms_squares(xy, np.array([0.5, 0.9, 0.7]), side_px=4.0, iou_threshold=0.3)
    assert list(kept) == [1, 2]


def test_nms_iou_exactly_at_the_threshold_is_kept():
    # offset d along x: IoU = (s - d) / (s + d); d = s * 0.7 / 1.3 gives IoU = 0.3 exactly.
    s = 10.0
    d = s * 0.7 / 1.3
    xy = np.array([[0.0, 0.0], [d, 0.0]])
    assert box_iou(np.array(d), np.array(0.0), s) == pytest.approx(0.3)
    assert len(nms_squares(xy, np.array([1.0, 0.5]), s, iou_threshold=0.3 + 1e-9)) == 2
    assert len(nms_squares(xy, np.array([1.0, 0.5]), s, iou_threshold=0.3 - 1e-9)) == 1


def test_nms_chain_keeps_non_adjacent_boxes():
    # a suppressed box does not suppress others: greedy NMS keeps 0 and 2 of a chain 0-1-2
    xy = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
    assert sorted(nms_squares(xy, np.array([1.0, 0.9, 0.8]), 4.0, 0.3)) == [0, 2]


def test_nms_empty_input_and_bad_arguments():
    assert len(nms_squares(np.zeros((0, 2)), np.zeros(0), 5.0)) == 0
    assert nms_head(np.zeros((16, 16)), 5.0).empty
    with pytest.raises(AtomlocInputError):
        nms_squares(np.zeros((1, 2)), np.ones(1), 0.0)
    with pytest.raises(AtomlocInputError):
        local_maxima(np.zeros((8, 8)), window_px=2)


def test_nms_head_finds_subpixel_centres_of_a_confidence_map():
    rng = np.random.default_rng(0)
    truth = np.array([[x, y] for x in range(6, 60, 10) for y in range(6, 60, 10)], float) + rng.uniform(-0.5, 0.5, (36, 2))
    conf = peak_map((64, 64), truth, 1.5)
    found = nms_head(conf, spacing_px=10.0)
    assert len(found) == len(truth)
    d, _ = cKDTree(found[["x", "y"]].to_numpy()).query(truth)
    assert d.max() < 0.1
    # without sub-pixel refinement the centres are whole pixels
    assert np.allclose(nms_head(conf, 10.0, subpixel=False)[["x", "y"]] % 1, 0)


def test_subpixel_parabola_keeps_points_on_the_border():
    conf = np.zeros((5, 5))
    conf[0, 0] = 1.0
    assert np.allclose(subpixel_parabola(conf, np.array([[0.0, 0.0]])), [[0.0, 0.0]])


def test_otsu_centroid_head():
    truth = np.array([[10.3, 12.6], [30.0, 30.0], [50.7, 8.2]])
    seg = peak_map((64, 64), truth, 1.2)
    found = otsu_centroid_head(seg).sort_values("x").to_numpy()[:, :2]
    assert np.abs(found - truth).max() < 0.15  # the threshold cuts the peak on whole pixels: ~0.1 px bias
    assert otsu_centroid_head(np.zeros((8, 8))).empty


def test_otsu_centroid_head_splits_a_component_holding_two_columns():
    # two map blobs 4 px apart (a dumbbell at the network's scale) make one Otsu component
    yy, xx = np.mgrid[:32, :32]
    seg = sum(np.exp(-((xx - x) ** 2 + (yy - 16) ** 2) / (2 * 1.5 ** 2)) for x in (13.0, 17.0))
    seg = seg / seg.max()
    assert len(otsu_centroid_head(seg, split=False)) == 1
    found = otsu_centroid_head(seg).sort_values("x")
    assert len(found) == 2 and np.allclose(found.x, [13.0, 17.0], atol=0.6) and np.allclose(found.y, 16.0, atol=0.1)
    one = np.exp(-((xx - 10.0) ** 2 + (yy - 9.0) ** 2) / (2 * 1.5 ** 2))  # one blob stays one
    assert len(otsu_centroid_head(one)) == 1
    saturated = np.minimum(1.0, 1.3 * one).astype(np.float32)  # a sigmoid's plateau at 1 is one maximum
    assert len(otsu_centroid_head(saturated)) == 1


# --- losses ------------------------------------------------------------------------------------------

def test_chi_square_loss_equals_its_formula():
    rng = np.random.default_rng(1)
    pred = rng.random((3, 1, 8, 8))
    target = rng.random((3, 1, 8, 8))
    expected = np.mean([np.sum((p - t) ** 2 / (t + t.max() / 10)) for p, t in zip(pred, target)])
    got = chi_square_loss(torch.from_numpy(pred), torch.from_numpy(target))
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_atomid_loss_equals_its_formula():
    rng = np.random.default_rng(2)
    f, y = rng.random((4, 1, 8, 8)), rng.random((4, 1, 8, 8))
    g, s = rng.random(4) * 10, rng.random(4) * 10
    expected = sum(0.1 * np.sum((f[i] - y[i]) ** 2) + (g[i] - s[i]) ** 2 for i in range(4)) / (2 * 4)
    got = atomid_loss(*(torch.from_numpy(a) for a in (f, g, y, s)), lam=0.1)
    assert float(got) == pytest.approx(expected, rel=1e-9)


# --- inference and checkpoints ---------------------------------------------------------------------------

def _random_model(arch="atomid", base=4, depth=3, seed=0):
    torch.manual_seed(seed)
    model = build_model(arch, base, depth)
    for mod in model.modules():  # non-trivial batch-norm statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_tiled_inference_equals_untiled():
    model = _random_model()
    img = np.random.default_rng(3).random((2, 131, 170)).astype(np.float32)
    full, s_full = predict(model, img, max_tile_px=1024)
    tiled, s_tiled = predict(model, img, max_tile_px=80, margin_px=24)
    assert full.shape == img.shape
    assert np.abs(full - tiled).max() <= 1e-5
    assert np.allclose(s_full, s_tiled, rtol=1e-5)


def test_test_time_augmentation_makes_the_map_d4_equivariant():
    # the D4-averaged map of a rotated / mirrored image is the rotated / mirrored map,
    # exactly; the plain network's is not (its filters have no symmetry)
    model = _random_model()
    img = np.random.default_rng(4).random((64, 64)).astype(np.float32)
    moves = (lambda a: np.rot90(a, 1, axes=(-2, -1)), lambda a: np.rot90(a, 2, axes=(-2, -1)),
             lambda a: a[..., ::-1], lambda a: np.swapaxes(a, -2, -1))
    for tta in (False, True):
        base, s_base = predict(model, img, tta=tta)
        worst = 0.0
        for move in moves:
            moved, s_moved = predict(model, np.ascontiguousarray(move(img)), tta=tta)
            worst = max(worst, np.abs(moved - move(base)).max())
            if tta:
                assert np.allclose(s_moved, s_base, rtol=1e-5)
        if tta:
            assert worst <= 1e-5
        else:
            assert worst > 1e-3
    # averaging commutes with tiling: tiles of a padded, non-square image give the untiled map
    img = np.random.default_rng(5).random((131, 170)).astype(np.float32)
    full, _ = predict(model, img, tta=True)
    tiled, _ = predict(model, img, max_tile_px=80, margin_px=24, tta=True)
    assert np.abs(full - tiled).max() <= 1e-5


@pytest.mark.parametrize("arch", ["atomid", "atomsegnet", "restorer"])
def test_folded_batch_norm_gives_the_same_outputs(arch):
    model = _random_model(arch)
    for mod in model.modules():  # non-trivial affine parameters too
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.3, 0.3)
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 14  # the original is untouched
    img = np.random.default_rng(6).random((2, 72, 90)).astype(np.float32)
    (ref, s_ref), (out, s_out) = predict(model, img), predict(folded, img)
    assert np.abs(out - ref).max() <= 1e-5 and np.abs(ref).max() > 0.1
    if arch == "atomid":
        assert np.allclose(s_out, s_ref, rtol=1e-5)


def test_bfloat16_inference_matches_float32_and_is_chosen_only_where_native():
    from atomloc.locate.learned import load_model
    from atomloc.simulate.series import SeriesSpec, simulate_series

    series = simulate_series(SeriesSpec(material="MoS2", shape_px=(256, 256), n_frames=1, rotation_deg=13.0,
                                        dose_e_per_A2=(1e4, 1e4), seed=2))
    frame = series.frames[0].astype(np.float64)
    net = load_model("auto", "atomid")
    (ref, s_ref), (out, s_out) = predict(net, frame, precision="fp32"), predict(net, frame, precision="bf16")
    assert np.abs(out - ref).max() <= 0.05 and ref.max() > 0.9
    assert s_out == pytest.approx(s_ref, rel=0.01)
    a = locate(frame, "atomid", precision="fp32")[["x", "y"]].to_numpy()
    b = locate(frame, "atomid", precision="bf16")[["x", "y"]].to_numpy()
    d, _ = cKDTree(a).query(b)
    assert len(a) == len(b) > 100 and np.sqrt(np.mean(d ** 2)) <= 0.02  # px
    assert not use_bf16(net, "cuda", "auto") and use_bf16(net, "cuda", "bf16") and not use_bf16(net, "cpu", "fp32")
    assert not native_bf16("cuda")
    assert not use_bf16(_random_model("restorer"), "cpu", "auto")  # restorations stay float32
    with pytest.raises(AtomlocInputError, match="precision 'fp16'"):
        predict(net, frame, precision="fp16")


def test_float32_inference_opens_no_autocast_and_native_bf16_reads_the_cpu(monkeypatch):
    import platform

    def refuse(*args, **kwargs):  # torch < 2.5 raises for an "mps" autocast even when disabled
        raise AssertionError("autocast entered in float32")

    model = _random_model("atomid")
    img = np.random.default_rng(1).random((40, 48)).astype(np.float32)
    ref = predict(model, img, precision="fp32")[0]
    monkeypatch.setattr(torch, "autocast", refuse)
    assert np.array_equal(predict(model, img, precision="fp32")[0], ref)
    with pytest.raises(AssertionError, match="autocast entered"):
        predict(model, img, precision="bf16")
    if platform.machine().lower() in ("x86_64", "amd64"):  # the CPU's instructions decide, not oneDNN's emulation
        for avx512_bf16, amx, native in ((False, False, False), (True, False, True), (False, True, True)):
            monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
            monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
            assert native_bf16("cpu") is native


def test_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    model = _random_model("atomsegnet", base=4, depth=2)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, "atomsegnet", {"training": {"epochs": 1}})
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["architecture"] == {"name": "atomsegnet", "base_channels": 4, "depth": 2}
    back, meta2 = load_checkpoint(path, "atomsegnet", device="cpu")
    img = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    assert np.array_equal(predict(model, img)[0], predict(back, img)[0])
    with pytest.raises(AtomlocInputError, match="'atomsegnet' model, but 'atomid'"):
        load_checkpoint(path, "atomid")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(AtomlocInputError, match="m.pt: cannot load"):
        load_checkpoint(path, "atomsegnet")
    with pytest.raises(AtomlocInputError, match="model file not found"):
        load_checkpoint(tmp_path / "none.pt", "atomsegnet")


def test_locate_without_a_model_says_how_to_get_one(tmp_path, monkeypatch):
    import atomloc.locate.learned as learned

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(learned, "SHIPPED_MODELS", tmp_path)  # as if the package shipped no weights
    img = np.random.default_rng(0).random((32, 32))
    with pytest.raises(AtomlocInputError, match="atomid: no model given and no pretrained weights at .*; train one "
                                                "with the workflow"):
        locate(img, "atomid")
    with pytest.raises(AtomlocInputError, match=r"atomsegnet: no trained model at none\.pt; .*--model PATH"):
        locate(img, "atomsegnet", model="none.pt")


def test_locate_with_a_model_path(tmp_path):
    model = _random_model("atomid", base=4, depth=2)
    save_checkpoint(tmp_path / "a.pt", model, "atomid", {})
    img, _ = square_lattice(8.0, shape=(64, 64))
    out = locate(img, "atomid", model=str(tmp_path / "a.pt"), min_confidence=0.0)
    assert {"x", "y", "score"} <= set(out.columns)
    out = locate(img, "atomid", model=str(tmp_path / "a.pt"), head="log", spacing_px=8.0)
    assert {"x", "y"} <= set(out.columns)


# --- training --------------------------------------------------------------------------------------------

def _toy_set(n, seed, shape=64):
    """Square lattices of spacing 6-16 px with their confidence maps."""
    rng = np.random.default_rng(seed)
    images, targets, spacing, pos = [], [], [], []
    for _ in range(n):
        s = rng.uniform(6, 16)
        img, xy = square_lattice(s, shape=(shape, shape), seed=int(rng.integers(1 << 30)),
                                 angle_deg=rng.uniform(0, 90), counts=100.0)
        images.append(img)
        targets.append(peak_map((shape, shape), xy, 0.15 * s))
        spacing.append(s)
        pos.append(xy)
    from atomloc.locate.nets.models import normalise_input

    return TrainingSet(np.stack([normalise_input(i) for i in images]), np.stack(targets).astype(np.float32),
                       np.asarray(spacing, np.float32), pos, np.full(n, "toy"))


def test_spacing_branch_learns_the_spacing():
    data = _toy_set(160, seed=0)
    spec = TrainSpec(architecture="atomid", base_channels=4, depth=3, epochs=12, batch_size=8, lr=3e-3,
                     lr_step_epochs=9, crop_px=64, val_frac=0.1, seed=0, lambda_map=0.1)
    model, history, summary = train_model(data, spec)
    test = _toy_set(30, seed=99)
    _, spacing = predict(model, test.images)
    rel = np.abs(spacing - test.spacing_px) / test.spacing_px
    assert np.median(rel) <= 0.10
    assert list(history.columns) == ["epoch", "lr", "train_loss", "val_loss", "val_f1", "seconds"]
    assert history.lr.iloc[-1] == pytest.approx(3e-4)


def test_training_is_seeded():
    data = _toy_set(12, seed=1)
    spec = TrainSpec(architecture="atomsegnet", target="gaussian_mask", base_channels=4, depth=2, epochs=1,
                     batch_size=4, crop_px=64, seed=5)
    a, ha, _ = train_model(data, spec)
    b, hb, _ = train_model(data, spec)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert ha.drop(columns="seconds").equals(hb.drop(columns="seconds"))


def test_series_tiles_carry_their_labels():
    img = np.zeros((2, 96, 130), np.float32)
    xy = np.array([[x, y] for x in range(5, 128, 9) for y in range(5, 95, 9)], float)
    img[:] = render_columns((96, 130), xy[:, 0], xy[:, 1], np.ones(len(xy)), 1.5)
    spec = TrainSpec(crop_px=64, depth=3)
    data = series_set(img, [xy, xy], 20.0, spec)
    assert data.images.shape == (2 * 1 * 2, 64, 64)  # 96 // 64 rows x 130 // 64 columns of tiles per frame
    assert np.allclose(data.spacing_px, 9.0)
    assert data.targets.max() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(AtomlocInputError, match="circular mask"):
        series_set(img, [xy, xy], 20.0, TrainSpec(target="circular_mask"))


def test_series_tiles_are_repeated_in_training_only():
    from atomloc.learn.data import split_indices

    source = np.array(["library"] * 30 + ["series"] * 10)
    val, train = split_indices(source, 0.25, 3, np.random.default_rng(0))
    assert len(val) == 10 and len(np.unique(val)) == 10 and not set(val) & set(train)
    counts = np.bincount(train, minlength=len(source))
    assert set(counts[[i for i in range(40) if i not in val and source[i] == "series"]]) == {3}
    assert set(counts[[i for i in range(40) if i not in val and source[i] == "library"]]) == {1}
    val1, train1 = split_indices(source, 0.25, 1, np.random.default_rng(0))
    assert np.array_equal(val1, val) and len(train1) == 30
    with pytest.raises(AtomlocInputError, match="series_repeat"):
        TrainSpec(series_repeat=0).check()


def test_bad_training_settings_name_the_key():
    with pytest.raises(AtomlocInputError, match="models.atomid.train.crop_px"):
        TrainSpec.from_mapping({"crop_px": 100, "depth": 3}, name="models.atomid.train")
    with pytest.raises(AtomlocInputError, match="target"):
        TrainSpec.from_mapping({"target": "mask"})
