import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from atomloc.analysis.metrics import score_detections
from atomloc.cli import main
from atomloc.locate.registry import available_methods, get_method
from atomloc.testing import mos2_frame


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "atomloc.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def big_frame():
    """A 1024 x 1024 simulated MoS2 frame (20 pm pixels) and its truth."""
    s = mos2_frame(spacing_px=9.12, shape=(1024, 1024), electrons_per_px=800.0, seed=21)
    return s.frames[0], s.truth.positions(0)


def to_uint8(img):
    lo, hi = np.percentile(img, [0.1, 99.9])
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_locate_bmp_8_and_24_bit_with_no_options(tmp_path, big_frame, mode):
    img, truth = big_frame
    grey = to_uint8(img)
    bmp = tmp_path / f"haadf_{mode}.bmp"
    Image.fromarray(grey if mode == "L" else np.dstack([grey] * 3)).convert(mode).save(bmp)
    assert Image.open(bmp).mode == mode
    out = tmp_path / "a.csv"
    res = run_cli("locate", bmp, "--method", "log", "--out", out)
    assert res.returncode == 0, res.stderr
    pos = pd.read_csv(out)
    assert list(pos.columns[:2]) == ["x", "y"]
    score = score_detections(pos[["x", "y"]].to_numpy(), truth, img.shape)
    assert score.f1 >= 0.95


def test_truncated_file_one_line_error_no_output(tmp_path):
    grey = (np.random.default_rng(0).random((256, 256)) * 255).astype(np.uint8)
    bmp = tmp_path / "cut.bmp"
    Image.fromarray(grey).save(bmp)
    bmp.write_bytes(bmp.read_bytes()[:10000])
    out = tmp_path / "out.csv"
    res = run_cli("locate", bmp, "--method", "log", "--out", out)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cut.bmp" in lines[0] and lines[0].startswith("atomloc: error:")
    assert not out.exists()


def test_params_and_pixel_size(tmp_path, capsys):
    s = mos2_frame(shape=(128, 128), electrons_per_px=2000.0, seed=2)
    np.save(tmp_path / "f.npy", s.frames[0])
    out = tmp_path / "p.csv"
    assert main(["locate", str(tmp_path / "f.npy"), "--method", "gaussfit", "--pixel-size-pm", "20",
                 "--param", "threshold_rel=0.15", "--param", "spacing_px=9.1", "--out", str(out)]) == 0
    pos = pd.read_csv(out)
    assert score_detections(pos[["x", "y"]].to_numpy(), s.truth.positions(0), (128, 128)).f1 >= 0.98
    assert main(["locate", str(tmp_path / "f.npy"), "--method", "log", "--param", "nonsense=1",
                 "--out", str(tmp_path / "q.csv")]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists()


def test_methods_lists_parameters(capsys):
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    for name in ("threshold_centroid", "log", "gaussfit", "spacing_px = auto", "threshold = auto", "preset = noise"):
        assert name in text


def test_console_script_installed():
    exe = shutil.which("atomloc")
    assert exe, "the atomloc console script is not on PATH (pip install -e .)"
    res = subprocess.run([exe, "methods"], capture_output=True, text=True)
    assert res.returncode == 0 and "gaussfit" in res.stdout


@pytest.mark.parametrize("method", available_methods())
def test_every_method_runs_from_the_command_line(tmp_path, method, request):
    if get_method(method).missing():
        pytest.skip(f"{method} needs {get_method(method).missing()}")
    s = mos2_frame(shape=(96, 96), electrons_per_px=2000.0, seed=4)
    np.save(tmp_path / "f.npy", s.frames[0])
    out = tmp_path / "p.csv"
    model = []
    if method in ("atomid", "atomsegnet"):  # learned: a small model trained on other MoS2 frames
        model = ["--model", str(request.getfixturevalue("trained_models")[method])]
    assert main(["locate", str(tmp_path / "f.npy"), "--method", method, *model, "--out", str(out)]) == 0
    pos = pd.read_csv(out)
    score = score_detections(pos[["x", "y"]].to_numpy(), s.truth.positions(0), (96, 96))
    assert score.f1 >= 0.95, (method, score)
