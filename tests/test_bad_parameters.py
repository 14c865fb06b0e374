"""Bad parameters, frames and outputs fail before any work, in one line, leaving nothing behind."""

import os
import re
import stat

import numpy as np
import pandas as pd
import pytest
import tifffile

from atomloc.cli import main
from atomloc.core.errors import AtomlocInputError
from atomloc.io.files import atomic_path, check_writable
from atomloc.io.images import read_image, read_stack
from atomloc.locate.params import Choice, Flag, Int, Real, Text
from atomloc.locate.registry import get_method, locate
from atomloc.testing import square_lattice


@pytest.fixture(scope="module")
def lattice_npy(tmp_path_factory):
    img, truth = square_lattice(9.0, shape=(96, 96), seed=3)
    path = tmp_path_factory.mktemp("img") / "lattice.npy"
    np.save(path, img)
    return path, truth


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


# (method, --param text, what the one-line message must say)
BAD_PARAMS = [
    ("gaussfit", "threshold_rel=abc", "threshold_rel='abc': expected a number >= 0"),
    ("gaussfit", "fit_radius_px=[1,2]", r"fit_radius_px=\[1, 2\]: expected a number > 0 or 'auto'"),
    ("gaussfit", "threshold_rel=null", "threshold_rel=None: expected a number >= 0"),
    ("gaussfit", "spacing_px=.inf", "spacing_px=inf: expected a number > 0 or 'auto'"),
    ("gaussfit", "spacing_px=nan", "spacing_px=nan: expected a number > 0 or 'auto'"),
    ("gaussfit", "min_distance_px=-3", "min_distance_px=-3: expected a number >= 1 or 'auto'"),
    ("findfoci", "min_size_px=2.5", "min_size_px=2.5: expected an integer >= 1 or 'auto'"),
    ("log", "preset=paper", "preset='paper': expected one of 'noise', 'study'"),
    ("gaussfit", "false_alarm_rate=1.5", "false_alarm_rate=1.5: expected a number in .0, 1."),
    ("gaussfit", "threshold_rel=-0.5", "threshold_rel=-0.5: expected a number >= 0"),
    ("gaussfit", "threshold_rel=true", "threshold_rel=True: expected a number >= 0"),
    ("gaussfit", "no_such=1", r"unknown parameter\(s\) \['no_such'\]"),
    ("log", "num_sigma=-3", "num_sigma=-3: expected an integer >= 1"),
    ("log", "threshold=-0.1", "threshold=-0.1: expected a number >= 0"),
    ("log", "overlap=-1", r"overlap=-1: expected a number in \[0, 1\]"),
    ("dog", "sigma_ratio=1", "sigma_ratio=1: expected a number > 1"),
    ("threshold_centroid", "threshold=1.5", r"threshold=1.5: expected a number in \[0, 1\] or 'otsu'"),
    ("threshold_centroid", "threshold=mean", r"threshold='mean': expected a number in \[0, 1\] or 'otsu'"),
    ("findfoci", "peak_param=-1", "peak_param=-1: expected a number >= 0"),
    ("findfoci", "centre_method=middle", "centre_method='middle': expected one of 'max', 'com', 'gaussian'"),
    ("findfoci", "min_size_px=0", "min_size_px=0: expected an integer >= 1 or 'auto'"),
    ("rl_gaussfit", "num_iter=0", "num_iter=0: expected an integer >= 1"),
    ("atomid", "max_tile_px=-5", "max_tile_px=-5: expected an integer >= 256"),
    ("atomid", "min_confidence=-0.5", r"min_confidence=-0.5: expected a number in \[0, 1\]"),
    ("atomid", "window_px=abc", "window_px='abc': expected an integer >= 1"),
    ("atomid", "device=bogus", "device='bogus': expected auto, cpu, mps, cuda or cuda:N"),
    ("atomid", "head=hog", "head='hog': expected one of 'nms', 'log', 'dog', 'doh'"),
    ("atomid", "subpixel=maybe", "subpixel='maybe': expected true or false"),
    ("atomsegnet", "refine=spline", "refine='spline': expected one of 'none', 'gaussian'"),
    ("atomap", "percent_to_nn=0", r"percent_to_nn=0: expected a number in \(0, 1\]"),
]


@pytest.mark.parametrize("method,param,message", BAD_PARAMS)
def test_bad_parameter_one_line_exit_2_no_output(tmp_path, capsys, lattice_npy, method, param, message):
    out = tmp_path / "p.csv"
    rc, err = run(capsys, "locate", lattice_npy[0], "--method", method, "--param", param, "--out", out)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"atomloc: error: method {method!r}: ") or "unknown parameter" in err[0]
    assert re.search(message, err[0]), err[0]
    assert not out.exists()


@pytest.mark.parametrize("method,param,message", BAD_PARAMS[:8])
def test_the_python_api_checks_the_same(method, param, message):
    key, _, text = param.partition("=")
    from atomloc.cli import _parse_value

    with pytest.raises(AtomlocInputError, match=message):
        locate(np.random.default_rng(0).random((32, 32)), method, **{key: _parse_value(text)})


def test_a_number_yaml_leaves_a_string_is_a_number(tmp_path, capsys, lattice_npy):
    out = tmp_path / "p.csv"
    rc, err = run(capsys, "locate", lattice_npy[0], "--method", "gaussfit", "--param", "threshold_rel=1e-1",
                  "--out", out)
    assert rc == 0, err
    assert len(pd.read_csv(out)) > 50


def test_pixel_size_must_be_finite(tmp_path, capsys, lattice_npy):
    out = tmp_path / "p.csv"
    rc, err = run(capsys, "locate", lattice_npy[0], "--pixel-size-pm", "inf", "--out", out)
    assert rc == 2 and len(err) == 1 and "pixel_size_pm must be a finite number > 0 (got inf)" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("where", ["folder", "file_parent"])
def test_unwritable_output_fails_before_the_work(tmp_path, capsys, lattice_npy, where):
    (tmp_path / "plain").write_text("x")
    out = {"folder": tmp_path, "file_parent": tmp_path / "plain" / "p.csv"}[where]
    rc, err = run(capsys, "locate", lattice_npy[0], "--out", out)
    assert rc == 2 and len(err) == 1 and "cannot write the output" in err[0]
    assert ("it is a folder" if where == "folder" else "plain is a file, not a folder") in err[0]


def test_check_writable_accepts_a_new_nested_path(tmp_path):
    assert check_writable(tmp_path / "a" / "b" / "p.csv") == tmp_path / "a" / "b" / "p.csv"


def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.csv") as tmp:
            tmp.write_text("x,y\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o644


@pytest.fixture(scope="module")
def stack_tif(tmp_path_factory):
    frames = [square_lattice(9.0, shape=(96, 96), seed=k, angle_deg=10.0 + 5 * k) for k in range(3)]
    path = tmp_path_factory.mktemp("stack") / "stack.tif"
    tifffile.imwrite(path, np.stack([f[0] for f in frames]).astype(np.float32), photometric="minisblack")
    return path, [f[1] for f in frames]


def test_a_stack_needs_a_frame_and_says_how_many(tmp_path, capsys, stack_tif):
    out = tmp_path / "p.csv"
    rc, err = run(capsys, "locate", stack_tif[0], "--out", out)
    assert rc == 2 and len(err) == 1
    assert "holds 3 frames; choose one with --frame K (0 to 2) or locate all with --frame all" in err[0]
    rc, err = run(capsys, "locate", stack_tif[0], "--frame", "3", "--out", out)
    assert rc == 2 and "frame 3 requested but the file holds 3 (0 to 2)" in err[0]
    rc, err = run(capsys, "locate", stack_tif[0], "--frame", "-1", "--out", out)
    assert rc == 2 and "--frame '-1': expected a frame index (0, 1, ...) or all" in err[0]
    assert not out.exists()


def test_frame_k_and_frame_all(tmp_path, capsys, stack_tif):
    from atomloc.analysis.metrics import score_detections

    path, truths = stack_tif
    out = tmp_path / "two.csv"
    assert run(capsys, "locate", path, "--frame", "2", "--out", out)[0] == 0
    pos = pd.read_csv(out)
    assert "frame" not in pos
    assert score_detections(pos[["x", "y"]].to_numpy(), truths[2], (96, 96)).f1 >= 0.98
    out = tmp_path / "all.csv"
    assert run(capsys, "locate", path, "--frame", "all", "--out", out)[0] == 0
    pos = pd.read_csv(out)
    assert sorted(set(pos["frame"])) == [0, 1, 2]
    for k in range(3):
        assert score_detections(pos.loc[pos.frame == k, ["x", "y"]].to_numpy(), truths[k], (96, 96)).f1 >= 0.98


def test_read_stack_shapes(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "rgb.npy", rng.random((20, 24, 3)))
    np.save(tmp_path / "stack.npy", rng.random((4, 20, 24)))
    assert read_stack(tmp_path / "rgb.npy").shape == (1, 20, 24)
    assert read_stack(tmp_path / "stack.npy").shape == (4, 20, 24)
    bad = rng.random((2, 20, 24))
    bad[1, 3, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(AtomlocInputError, match=r"nan.npy\[frame 1\]: image contains 1 NaN"):
        read_image(tmp_path / "nan.npy", frame=0)


def test_param_specs():
    assert Real(gt=0).check(3, "p") == 3
    assert Int(ge=1).check(3.0, "p") == 3 and isinstance(Int(ge=1).check(3.0, "p"), int)
    assert Real(gt=0, auto=True).check("auto", "p") == "auto"
    assert Flag().check(False, "p") is False
    assert Choice("a", "b").check("b", "p") == "b"
    assert Text(pattern=r"cpu|cuda(:\d+)?").check("cuda:1", "p") == "cuda:1"
    for spec, value in ((Real(gt=0), 0), (Real(ge=0, le=1), 1.01), (Real(), float("inf")), (Int(), 1.5),
                        (Int(), True), (Flag(), 1), (Choice("a"), "c"), (Text(pattern="cpu"), "gpu"),
                        (Real(), "auto"), (Real(choices=("otsu",)), "mean")):
        with pytest.raises(AtomlocInputError, match="p="):
            spec.check(value, "p")
    assert Real(gt=0, le=1).describe() == "a number in (0, 1]"
    assert Int(ge=1, auto=True).describe() == "an integer >= 1 or 'auto'"


def test_methods_listing_says_what_each_parameter_accepts(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "    threshold_rel = 0.0  (a number >= 0)" in out
    assert "    false_alarm_rate = 0.001  (a number in (0, 1))" in out
    assert "    head = nms  (one of 'nms', 'log', 'dog', 'doh')" in out
    assert get_method("gaussfit").params["spacing_px"].describe() == "a number > 0 or 'auto'"


# --- bad files: (name, writer(path), what the one-line message must say) ---------------------------

def _npy(array):
    return lambda path: np.save(path, array)


def _bytes(data: bytes):
    return lambda path: path.write_bytes(data)


def _truncated_tif(path):
    tifffile.imwrite(path, np.random.default_rng(0).random((64, 64)).astype(np.float32))
    path.write_bytes(path.read_bytes()[:300])


def _nan_frame_stack(path):
    frames = np.random.default_rng(0).random((2, 20, 24))
    frames[1, 3, 3] = np.nan
    np.save(path, frames)


_RNG = np.random.default_rng(7)
BAD_FILES = [
    ("missing.tif", None, "file not found"),
    ("folder.tif", "folder", "file not found"),
    ("empty.npy", _bytes(b""), "cannot read image"),
    ("truncated.tif", _truncated_tif, "cannot read image"),
    ("text.tif", _bytes(b"this is not an image\n"), "cannot read image"),
    ("fake.dm3", _bytes(b"not a Digital Micrograph file"), "cannot read"),
    ("fake.emd", _bytes(b"not HDF5"), "cannot read"),
    ("image.jpg", _bytes(b"\xff\xd8\xff"), "unsupported image format '.jpg'"),
    ("nan.npy", _npy(np.where(np.eye(20, dtype=bool), np.nan, _RNG.random((20, 20)))), "20 NaN or infinite pixels"),
    ("inf.npy", _npy(np.where(np.eye(20, dtype=bool), np.inf, _RNG.random((20, 20)))), "20 NaN or infinite pixels"),
    ("constant.npy", _npy(np.full((20, 20), 3.0)), "image is constant"),
    ("tiny.npy", _npy(_RNG.random((4, 4))), "too small"),
    ("line.npy", _npy(_RNG.random(400)), "expected a grey or RGB image"),
    ("four_d.npy", _npy(_RNG.random((2, 3, 20, 20))), "expected a grey or RGB image"),
    ("complex.npy", _npy(_RNG.random((20, 20)) + 1j), "unsupported dtype complex128"),
    ("complex_rgb.npy", _npy(_RNG.random((20, 20, 3)) + 1j), "unsupported dtype complex128"),
    ("bool.npy", _npy(_RNG.random((20, 20)) > 0.5), "unsupported dtype bool"),
    ("bool_rgb.npy", _npy(_RNG.random((20, 20, 3)) > 0.5), "unsupported dtype bool"),
    ("text.npy", _npy(np.full((20, 20), "ab")), "unsupported dtype <U2"),
    ("object.npy", lambda p: np.save(p, np.array([[1, None]] * 10, dtype=object), allow_pickle=True),
     "cannot read image"),
    ("nan_frame.npy", _nan_frame_stack, r"nan_frame.npy\[frame 1\]: image contains 1 NaN"),
]


@pytest.mark.parametrize("filename,writer,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_one_line_exit_2_no_output(tmp_path, capsys, filename, writer, message):
    path = tmp_path / filename
    if writer == "folder":
        path.mkdir()
    elif writer is not None:
        writer(path)
    out = tmp_path / "p.csv"
    rc, err = run(capsys, "locate", path, "--frame", "all", "--out", out)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"atomloc: error: {path}") and re.search(message, err[0]), err[0]
    assert not out.exists()


# --- bad model files (--model): one line in atomloc's words, never torch's advice ------------------

@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    from atomloc.locate.nets.models import build_model, save_checkpoint

    path = tmp_path_factory.mktemp("model") / "ok.pt"
    save_checkpoint(path, build_model("atomid", 4, 2).eval(), "atomid", {})
    return path


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _state(kind):
    import torch

    from atomloc.locate.nets.models import build_model

    if kind == "malicious":
        return {"weights": _Payload()}
    if kind == "list":
        return [1, 2, 3]
    if kind == "wrong_shape":
        return {k: torch.zeros(1) for k in build_model("atomid", 4, 2).state_dict()}
    return {"foo": torch.zeros(3)}  # every weight missing, one unexpected


_ARCH = '"architecture": {"name": "atomid", "base_channels": 4, "depth": 2}'
BAD_MODELS = [
    ("garbage", b"not a checkpoint", None, "ok.pt: cannot load the model weights: not a PyTorch checkpoint"),
    ("empty", b"", None, "ok.pt: cannot load the model weights: the file is empty"),
    ("truncated", "half", None, "ok.pt: cannot load the model weights: not a PyTorch checkpoint"),
    ("plain_pickle", "pickle", None, "ok.pt: cannot load the model weights: not a PyTorch checkpoint"),
    ("malicious", "malicious", None, "ok.pt: refused: the checkpoint holds Python objects besides weights"),
    ("not_a_state_dict", "list", None, "ok.pt: cannot load the model weights: it holds a list"),
    ("missing_weights", "missing", None, "weights do not fit the atomid model .* 70 missing"),
    ("wrong_shapes", "wrong_shape", None, "weights do not fit the atomid model .* of the wrong shape"),
    ("no_sidecar", None, "delete", "ok.json: model file not found"),
    ("sidecar_not_json", None, "{", r"ok.json: not a model sidecar: not JSON"),
    ("sidecar_list", None, "[1, 2]", "ok.json: not a model sidecar: expected a JSON object, got list"),
    ("sidecar_no_arch", None, '{"architecture": "atomid"}', "ok.json: not a model sidecar: no 'architecture'"),
    ("sidecar_bad_depth", None, '{"architecture": {"name": "atomid", "base_channels": 4, "depth": "x"}}',
     "architecture.depth='x', expected an integer"),
    ("sidecar_other_arch", None, '{"architecture": {"name": "atomsegnet", "base_channels": 4, "depth": 2}}',
     "ok.pt: checkpoint of a 'atomsegnet' model, but 'atomid' was asked for"),
    ("sidecar_bad_band", None, "{" + _ARCH + ', "library": {"spacing_px_range": 5}}',
     r"library.spacing_px_range=5, expected \[low, high\]"),
    ("sidecar_bad_gate", None, "{" + _ARCH + ', "inference": {"noise_gate": "yes"}}',
     "inference.noise_gate='yes', expected bool"),
    ("sidecar_bad_confidence", None, "{" + _ARCH + ', "operating_point": {"min_confidence": [1]}}',
     r"operating_point.min_confidence=\[1\], expected number"),
]


@pytest.mark.parametrize("case,weights,sidecar,message", BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_bad_model_file_one_line_exit_2(tmp_path, capsys, lattice_npy, small_checkpoint, case, weights, sidecar,
                                        message):
    import pickle
    import shutil

    import torch

    path = tmp_path / "ok.pt"
    shutil.copy(small_checkpoint, path)
    shutil.copy(small_checkpoint.with_suffix(".json"), path.with_suffix(".json"))
    if isinstance(weights, bytes):
        path.write_bytes(weights)
    elif weights == "half":
        path.write_bytes(small_checkpoint.read_bytes()[:2000])
    elif weights == "pickle":
        path.write_bytes(pickle.dumps(_Payload()))
    elif weights is not None:
        torch.save(_state(weights), path)
    if sidecar == "delete":
        path.with_suffix(".json").unlink()
    elif sidecar is not None:
        path.with_suffix(".json").write_text(sidecar)
    out = tmp_path / "p.csv"
    rc, err = run(capsys, "locate", lattice_npy[0], "--method", "atomid", "--model", path, "--out", out)
    assert rc == 2 and len(err) == 1, err
    assert re.search(message, err[0]), err[0]
    assert "weights_only" not in err[0] and "Traceback" not in err[0]
    assert not out.exists()
