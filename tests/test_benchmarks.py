"""The benchmark scripts run (on a small image) and print their ratio tables."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_methods_speed_prints_a_row_per_method():
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "methods_speed.py"), "--size", "128",
                          "--methods", "log", "gaussfit", "findfoci"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = [[cell.strip() for cell in line.split("|")[1:-1]] for line in res.stdout.splitlines()
             if line.startswith("| ")]
    header, rows = lines[0], {cells[0]: dict(zip(lines[0], cells)) for cells in lines[1:]}
    assert {"log", "gaussfit", "findfoci", "skimage blob_log (reference)", "estimate_spacing"} <= set(rows)
    assert "x_blob_log" in header
    assert float(rows["skimage blob_log (reference)"]["x_blob_log"]) == 1.0
    assert float(rows["gaussfit"]["x_blob_log"]) > 0
    assert float(rows["gaussfit"]["f1"]) >= 0.98


def test_gaussfit_benchmark_compares_with_atomap():
    pytest.importorskip("atomap")
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gaussfit.py"), "--size", "128"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = [[cell.strip() for cell in line.split("|")[1:-1]] for line in res.stdout.splitlines()
             if line.startswith("| ")]
    rows = {cells[0]: dict(zip(lines[0], cells)) for cells in lines[1:]}
    ours = rows["atomloc fit_gaussians (elliptical)"]
    atomap = rows["atomap refine_atom_positions_using_2d_gaussian"]
    assert float(ours["speedup_vs_atomap"]) > 1.0
    assert float(ours["rmse_px"]) <= 1.2 * float(atomap["rmse_px"])


def _table(stdout):
    lines = [[cell.strip() for cell in line.split("|")[1:-1]] for line in stdout.splitlines() if line.startswith("| ")]
    return lines[0], [dict(zip(lines[0], cells)) for cells in lines[1:]]


def test_infer_speed_prints_ratios_to_blob_log(tmp_path):
    import torch

    from atomloc.locate.nets.models import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "atomid.pt", build_model("atomid", 4, 2).eval(), "atomid", {})
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "infer_speed.py"), "--size", "128",
                          "--model", str(tmp_path / "atomid.pt"), "--repeat", "1"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    header, rows = _table(res.stdout)
    names = [r["method"] for r in rows]
    assert names[0] == "skimage blob_log (reference)" and "atomid, NMS head" in names
    assert any(n.startswith("atomid network + NMS head") for n in names)
    assert float(rows[0]["x_blob_log"]) == 1.0
    assert all(float(r["x_blob_log"]) > 0 for r in rows)


def test_held_out_benchmark_scores_a_held_out_structure():
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "held_out.py"), "--structures", "graphene",
                          "--methods", "gaussfit", "--frames", "1", "--size", "128"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr
    _, rows = _table(res.stdout)
    assert rows[0]["structure"] == "graphene" and float(rows[0]["f1_mean"]) >= 0.95


def test_simulate_benchmark_prints_seconds_per_frame():
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "simulate.py"), "--frames", "1", "--skip-prism"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    seconds = float(res.stdout.split("linear model:")[1].split("s per")[0])
    assert seconds > 0


def test_real_gallery_prints_counts_and_sanity_and_writes_overlays(tmp_path):
    import numpy as np

    from atomloc.testing import mos2_frame

    image = tmp_path / "mos2.npy"
    np.save(image, mos2_frame(spacing_px=9.0, shape=(160, 160), seed=2).frames[0])
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "real_gallery.py"), "--images", str(image),
                          "--methods", "gaussfit", "log", "atomid:tta", "--out", str(tmp_path / "g"), "--crop", "96"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = [[cell.strip() for cell in line.split("|")[1:-1]] for line in res.stdout.splitlines()
             if line.startswith("| ")]
    rows = {cells[2]: dict(zip(lines[0], cells)) for cells in lines[1:]}
    assert set(rows) == {"gaussfit", "log", "atomid:tta"}
    # A clean MoS2 frame: nearly every detection has its neighbour one spacing away.
    assert float(rows["gaussfit"]["within_30pct"]) >= 0.95
    assert float(rows["atomid:tta"]["within_30pct"]) >= 0.95
    assert (tmp_path / "g" / "mos2.png").stat().st_size > 0


def test_scaling_prints_time_and_peak_memory_per_size():
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "scaling.py"), "--sizes", "128", "256",
                          "--methods", "spacing", "log", "--timeout", "120"],
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    table = res.stdout.split("\n\n")[-1].splitlines()
    assert table[0].split()[:3] == ["method", "size", "time"]
    rows = table[1:]
    assert len(rows) == 4 and all(" GB " in row for row in rows)
    assert "spacing 8.0" in rows[1]  # the 256^2 lattice's 8 px spacing
    assert "columns" in rows[3]


def test_classical_sweep_scores_a_dose_and_judges_the_gap(tmp_path):
    out = tmp_path / "sweep.csv"
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "classical_sweep.py"), "--materials", "MoS2",
                          "--doses", "100", "1e4", "--methods", "gaussfit", "log", "--shape", "128", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    import pandas as pd

    scores = pd.read_csv(out)
    assert len(scores) == 4 and set(scores.method) == {"gaussfit", "log"}
    high = scores[scores.dose_e_per_A2 == 1e4]
    assert (high.f1 >= 0.98).all()
    # both sublattices found: against the Mo columns alone precision is 1/2, F1 2/3
    assert ((high.f1_heavy > 0.6) & (high.f1_heavy < 0.72)).all()
    assert (scores[scores.dose_e_per_A2 == 100].f1 <= 0.1).all()  # 0.1 e/px: columns invisible
    assert "| ('MoS2', 100.0)   | none" in res.stdout


def test_seed_spread_trains_each_seed_and_prints_the_spread(tmp_path):
    import json
    from dataclasses import asdict

    import torch
    import yaml

    from atomloc.io.series import write_series
    from atomloc.io.training import write_library, write_training_pairs
    from atomloc.series.label import training_positions
    from atomloc.simulate.library import LibrarySpec, synthesize_library
    from atomloc.simulate.series import simulate_series
    from atomloc.simulate.spec import SeriesSpec

    script = str(REPO / "benchmarks" / "seed_spread.py")
    res = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--seeds" in res.stdout, res.stderr
    # A results folder as the workflow leaves it for tests/config/tiny.yaml: its 12-image library, the
    # tiny_train training pairs (truth labels) and the tiny_mos2 test series.
    config_path = REPO / "tests" / "config" / "tiny.yaml"
    config = yaml.safe_load(config_path.read_text())
    results = tmp_path / "results"
    spec = LibrarySpec.from_mapping(config["library"])
    write_library(results / "library" / "library.h5", synthesize_library(spec),
                  attrs={"spec": json.dumps(asdict(spec), sort_keys=True)})
    for entry in config["datasets"]:
        if entry["split"] not in ("test", "train"):
            continue
        simulation = {k: v for k, v in entry.items() if k not in ("name", "split")}
        series = simulate_series(SeriesSpec.from_mapping(simulation), name=entry["name"])
        if entry["split"] == "test":
            write_series(results / "series" / f"{entry['name']}.h5", series)
        else:
            write_training_pairs(results / "training" / f"{entry['name']}.h5", series.frames,
                                 training_positions(series, None, "truth"), "truth",
                                 attrs={"pixel_size_pm": series.pixel_size_pm})
    out = tmp_path / "spread"
    res = subprocess.run([sys.executable, script, "--config", str(config_path), "--results", str(results),
                          "--seeds", "0", "1", "--epochs", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    _, rows = _table(res.stdout)
    assert [int(r["seed"]) for r in rows] == [0, 1]
    assert all(0.0 <= float(r["f1"]) <= 1.0 for r in rows)
    spread = float(res.stdout.split("learned_spread_f1:")[1].split()[0])
    assert spread >= 0 and abs(spread - abs(float(rows[0]["f1"]) - float(rows[1]["f1"]))) <= 1e-3
    assert "torch threads 1" in res.stdout
    weights = [torch.load(out / f"atomid_seed{k}.pt", weights_only=True) for k in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not (results / "models").exists()
