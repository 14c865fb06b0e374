"""End-to-end tests of the Snakemake workflow, run in subprocesses on a copy of the repository."""

import dataclasses
import hashlib
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from atomloc.io.training import read_training_pairs
from atomloc.series.align import align_series
from atomloc.simulate import SeriesSpec
from atomloc.simulate.library import LibrarySpec
from atomloc.simulate.sweep import SweepSpec

REPO = Path(__file__).resolve().parents[1]
TINY = "tests/config/tiny.yaml"

pytestmark = pytest.mark.workflow


def snakemake(workdir, *args, timeout=900):
    cmd = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def copy_repo(dest: Path) -> Path:
    """Copy the tracked and untracked-but-not-ignored files, as a fresh clone would have them."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).symlink_to(src.readlink())
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def job_counts(output: str) -> dict:
    """Parse Snakemake's 'Job stats' table of a dry run."""
    counts = {}
    block = output.split("Job stats:")[1].split("\n\n")[0]
    for line in block.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = copy_repo(tmp_path_factory.mktemp("wf"))
    res = snakemake(work, "--cores", "2", "--configfile", TINY)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return work


def test_lint_clean():
    res = snakemake(REPO, "--lint")
    assert res.returncode == 0, res.stdout + res.stderr


def test_default_config_dry_run():
    res = snakemake(REPO, "-n", "--cores", "2")
    assert res.returncode == 0, res.stderr
    counts = job_counts(res.stdout + res.stderr) if "Job stats:" in res.stdout + res.stderr else {}
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if counts:  # absent when results are already up to date in the checkout
        n_sweeps = sum(len(sweep["pixel_size_pm"]) for sweep in config.get("sweeps", []))  # one series per pixel size
        assert counts.get("simulate_series", 0) <= len(config["datasets"]) + n_sweeps


def test_paper_config_is_valid():
    res = snakemake(REPO, "-n", "--cores", "2", "--configfile", "workflow/configs/paper.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "mos2_c" in res.stdout + res.stderr


def test_release_dag_draws_a_restorer_library_only_where_configured():
    release = yaml.safe_load((REPO / "workflow" / "configs" / "release.yaml").read_text())["release"]
    own = sorted(n for n, r in release["restorers"].items() if "library" in r)
    assert own  # the release config gives denoise_bg its own draw
    res = snakemake(REPO, "release", "-n", "--forceall", "--cores", "2", "--configfile",
                    "workflow/configs/release.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    drawn = set(re.findall(r"results/release/(library|validation)_(\w+)\.h5", out))
    assert drawn == {(part, n) for n in own for part in ("library", "validation")}
    assert "results/release/library.h5" in out and "results/release/validation.h5" in out


def test_tiny_tables(tiny_run):
    tables = tiny_run / "results" / "tables"
    methods = pd.read_csv(tables / "methods.csv")
    config = yaml.safe_load((tiny_run / TINY).read_text())
    assert sorted(methods.method) == sorted(config["methods"])  # one row per method
    row = methods.set_index("method").loc["gaussfit"]
    assert row.f1_mean >= 0.95
    assert row.rmse_pm_mean < 5.0
    md = (tables / "methods.md").read_text()
    assert "| method" in md and "F1" in md and "Match radius" in md
    assert "scored against the simulated truth (metal, chalcogen columns)" in md
    per_image = pd.read_csv(tables / "per_image.csv")
    assert set(per_image.reference) == {"truth", "labels"}
    # (2 test frames + 3 single-frame datasets) x references x methods; the train split is never scored
    assert len(per_image) == 5 * 2 * len(config["methods"])
    assert set(per_image.dataset) == {"tiny_mos2", "tiny_scale", "tiny_failure", "tiny_strain"}
    truth = per_image[(per_image.reference == "truth") & (per_image.dataset == "tiny_mos2")]
    assert (truth.crlb_pm > 0).all()
    assert 0.8 <= truth.loc[truth.method == "gaussfit", "rmse_over_crlb"].min() <= 10  # no method beats the bound
    t1 = pd.read_csv(tables / "table1_atomid_per_image.csv")
    assert len(t1) == 2 and set(t1.dataset) == {"tiny_mos2"}
    t2 = pd.read_csv(tables / "table2_methods.csv")
    assert sorted(t2.method) == sorted(config["methods"])
    assert {"chamfer_px_mean", "jaccard_mean", "f1_mean", "rmse_pm_mean", "crlb_pm_mean"} <= set(t2.columns)
    t3 = pd.read_csv(tables / "table3_heads_timing.csv")
    assert sorted(t3["head"]) == ["dog", "doh", "log", "nms"] and (t3.time_ms_mean > 0).all()
    scale = pd.read_csv(tables / "scale.csv")
    assert len(scale) == len(config["methods"]) and set(scale.fov_nm.round(2)) == {2.88}
    failure = pd.read_csv(tables / "failure.csv")
    assert set(failure.dataset) == {"tiny_failure"} and len(failure) == len(config["methods"])
    dose = pd.read_csv(tables / "dose.csv")
    assert set(dose.dose_decile) == {1, 6}  # two test frames: the lower and the upper half
    conditions = pd.read_csv(tables / "conditions.csv")  # default defocus ±2 nm: within the depth of field
    assert len(conditions) == len(config["methods"]) and set(conditions.focus) == {"within depth of field"}
    assert set(conditions.dose) == {">= 10000 e/A2"}
    lattice = pd.read_csv(tables / "lattice_precision.csv").set_index("method")
    assert 0 < lattice.loc["gaussfit", "lattice_a_std_pm_mean"] < 20
    strain = pd.read_csv(tables / "strain.csv").set_index("method")
    assert set(strain.index) == set(config["methods"]) | {"truth", "gpa"}
    assert strain.loc["truth", "rms_error_exx"] < 0.01  # truth positions: scan distortion only
    assert abs(strain.loc["gaussfit", "hydrostatic_mean"] - 0.02) < 0.005  # the applied 2 % biaxial strain
    for stem in ("table1_atomid_per_image", "table2_methods", "table3_heads_timing", "scale", "dose", "conditions",
                 "failure", "lattice_precision", "strain"):
        assert (tables / f"{stem}.md").read_text().startswith("# ")
    labels = pd.read_csv(tables / "labels.csv")
    assert set(labels.labels) == {"reference_frame", "rigid_transfer", "nonrigid_transfer"}
    assert set(labels.dataset) == {d["name"] for d in config["datasets"]}
    assert (labels.loc[labels.dataset.isin(["tiny_mos2", "tiny_train"]), "f1_mean"] >= 0.95).all()
    assert not (tiny_run / "results" / "training" / "tiny_mos2.h5").exists()  # test split: never trained on
    pairs = tiny_run / "results" / "training" / "tiny_train.h5"
    frames, per_frame, attrs = read_training_pairs(pairs)
    assert attrs["label_source"] == "reference" and attrs["transfer"] == "nonrigid"
    assert len(per_frame) == frames.shape[0] == 2 and all(len(p) > 20 for p in per_frame)
    models = tiny_run / "results" / "models"
    for arch in ("atomid", "atomsegnet"):
        meta = json.loads((models / f"{arch}.json").read_text())
        assert meta["architecture"] == {"name": arch, "base_channels": 4, "depth": 2}
        history = pd.read_csv(models / f"{arch}_history.csv")
        assert list(history.epoch) == [1] and np.isfinite(history.train_loss).all()
    sources = json.loads((models / "atomid.json").read_text())["training"]["sources"]
    assert sources == {"library": "results/library/library.h5",
                       "series": {"results/training/tiny_train.h5": "reference"}}
    figures = tiny_run / "results" / "figures"
    pngs = [figures / "detections" / f"{method}.png" for method in config["methods"]]
    pngs += [figures / f"{name}.png" for name in ("f1_vs_dose", "f1_vs_fov", "rmse_vs_crlb", "training_curves",
                                                  "label_errors")] + [figures / "strain" / "tiny_strain.png"]
    pngs += [figures / "series" / f"{d['name']}.png" for d in config["datasets"]]
    for fig in pngs:
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
        assert fig.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-", fig
    for log in (tiny_run / "results" / "logs").rglob("*.log"):
        assert "Traceback" not in log.read_text(), log


def test_tiny_sweep_tables_and_figures(tiny_run):
    tables = tiny_run / "results" / "tables"
    config = yaml.safe_load((tiny_run / TINY).read_text())
    restored = sorted(config["restoration"]["locate"])
    methods = sorted(set(config["methods"]) | set(restored))
    curves = pd.read_csv(tables / "sweep_curves.csv")
    assert set(curves.axis) == {"dose", "defocus", "spacing"} and sorted(set(curves.method)) == methods
    dose = curves[curves.axis == "dose"]
    assert set(dose.x) == {3000.0, 100000.0} and (dose.n_images == 2).all()  # two seeds per point
    assert set(curves[curves.axis == "defocus"].x) == {0.0, 6.0}
    spacing = sorted(set(curves[curves.axis == "spacing"].x))
    assert len(spacing) == 2 and spacing[1] / spacing[0] == pytest.approx(30 / 20, rel=0.02)
    assert ((curves.f1_lo <= curves.f1_mean + 1e-12) & (curves.f1_mean <= curves.f1_hi + 1e-12)).all()
    high = dose[dose.x == 100000.0].set_index("method")
    assert high.loc["gaussfit", "f1_mean"] >= 0.95
    detect = pd.read_csv(tables / "sweep_dose_to_detect.csv")
    assert sorted(detect.method) == methods and detect.loc[detect.method == "gaussfit", "reached"].all()
    decision = pd.read_csv(tables / "decision_map.csv")
    assert len(decision[decision.axis == "defocus"]) == 3 and len(decision[decision.axis == "spacing"]) == 3
    assert set(decision.best) <= set(methods) and decision.tie.dtype == bool
    eff = pd.read_csv(tables / "sweep_efficiency.csv")
    gauss = eff[(eff.method == "gaussfit") & (eff.scope == "per dose") & (eff.dose_e_per_A2 == 100000.0)]
    assert 0.7 < gauss.ratio_mean.iloc[0] < 2.0  # RMSE over the bound of the same columns
    md = (tables / "decision_map.md").read_text()
    assert md.startswith("# Decision map") and "tie" in md and "paired bootstrap" in md
    for name in ("f1_vs_dose", "f1_vs_defocus", "f1_vs_spacing", "rmse_over_crlb_vs_dose", "decision_map_defocus",
                 "decision_map_spacing"):
        png = tiny_run / "results" / "figures" / "sweeps" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    positions = tiny_run / "results" / "sweeps" / "positions" / "gaussfit"
    assert sorted(p.name for p in positions.glob("*.csv")) == ["sweep_tiny_20pm.csv", "sweep_tiny_30pm.csv"]


def test_tiny_restoration_tables_and_figure(tiny_run):
    tables = tiny_run / "results" / "tables"
    config = yaml.safe_load((tiny_run / TINY).read_text())
    effect = pd.read_csv(tables / "restore_then_locate.csv")
    # each method@restoration against its own method, in focus at each sweep dose, paired over the two seeds
    assert sorted(set(effect.method)) == sorted(config["restoration"]["locate"])
    assert set(effect.dose_e_per_A2) == {3000.0, 100000.0} and (effect.n_images == 2).all()
    assert set(effect.helps_f1) <= {"yes", "no", "tie"}
    assert ((effect.d_f1_lo <= effect.d_f1_mean + 1e-12) & (effect.d_f1_mean <= effect.d_f1_hi + 1e-12)).all()
    quality = pd.read_csv(tables / "restoration_quality.csv")
    assert set(quality.restoration) == {"none", "denoise_bg", "tv+bg"}
    assert set(quality[quality.restoration != "none"].truth) == {"no_background"}
    # TV + background removal comes closer to the columns alone than the raw frame at each dose
    for dose in (3000.0, 100000.0):
        at = quality[(quality.dose_e_per_A2 == dose) & (quality.truth == "no_background")].set_index("restoration")
        assert at.loc["tv+bg", "psnr_db_mean"] > at.loc["none", "psnr_db_mean"], at
    assert "PSNR (dB)" in (tables / "restoration_quality.md").read_text()
    png = tiny_run / "results" / "figures" / "sweeps" / "restoration_examples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_chemistry_tables_and_figure(tiny_run):
    tables = tiny_run / "results" / "tables"
    config = yaml.safe_load((tiny_run / TINY).read_text())["chemistry"]
    maps = pd.read_csv(tables / "chemistry_maps.csv")
    assert set(maps.dataset) == {"tiny_mos2"} and set(maps.counts_per_pixel) == {0.02, 0.2}
    assert set(maps.element) == {"Mo", "S", "W"}
    assert {"raw", "blur", "fused"} <= set(maps.method) and set(maps.n_fields) == {config["test_fields"]}
    at = maps[(maps.counts_per_pixel == 0.2) & (maps.element == "Mo")].set_index("method")
    assert at.loc["fused", "nrmse_mean"] < 0.8 * at.loc["raw", "nrmse_mean"]  # the HAADF helps the heavy map
    columns = pd.read_csv(tables / "chemistry_columns.csv")
    assert set(columns.channels) == {"maps", "maps+HAADF"}
    assert ((columns.accuracy_mean >= 0) & (columns.accuracy_mean <= 1)).all()
    # every route is compared with raw and with blur
    reduction = pd.read_csv(tables / "chemistry_dose_reduction.csv")
    assert set(reduction.reference) == {"raw", "blur"} and "blur+HAADF" in set(reduction.method)
    assert "Dose-reduction factor" in (tables / "chemistry_dose_reduction.md").read_text()
    png = tiny_run / "results" / "figures" / "chemistry" / "maps.png"
    assert png.stat().st_size > 10_000


def test_tiny_ptycho_tables_and_figure(tiny_run):
    tables = tiny_run / "results" / "tables"
    config = yaml.safe_load((tiny_run / TINY).read_text())["ptycho"]
    summary = pd.read_csv(tables / "ptycho_modalities.csv")
    assert set(summary.material) == {"MoS2"}
    assert list(summary.modality.drop_duplicates()) == ["phase", "vADF", "iCoM", "HAADF"]
    assert set(summary.method) == set(config["locators"]) and set(summary.n_seeds) == {config["seeds"]}
    assert sorted(set(summary.dose_e_per_A2)) == sorted(config["doses"])
    for m in ("f1", "recall_heavy", "recall_light"):
        assert summary[f"{m}_mean"].between(0, 1).all(), m
    # At the higher dose every modality finds the columns; the phase finds the light ones at both doses.
    top = summary[summary.dose_e_per_A2 == max(config["doses"])].set_index("modality")
    assert (top["f1_mean"] >= 0.9).all() and top.loc["phase", "rmse_pm_mean"] < 10.0
    assert (summary[summary.modality == "phase"]["recall_light_mean"] >= 0.95).all()
    dose = pd.read_csv(tables / "ptycho_dose_to_detect.csv").set_index("modality")
    assert set(dose.index) == {"phase", "vADF", "iCoM", "HAADF"} and dose.loc["phase", "reached"]
    assert "Issue #20 checks" in (tables / "ptycho_modalities.md").read_text()
    assert "Dose to find the light columns" in (tables / "ptycho_dose_to_detect.md").read_text()
    png = tiny_run / "results" / "figures" / "ptycho" / "modalities.png"
    assert png.stat().st_size > 10_000


def test_report_gathers_every_figure_and_table(tiny_run):
    res = snakemake(tiny_run, "--configfile", TINY, "--report", "results/report.html")
    assert res.returncode == 0, res.stderr[-3000:]
    html = (tiny_run / "results" / "report.html").read_text(errors="replace")
    for name in ("f1_vs_dose", "rmse_vs_crlb", "training_curves", "label_errors", "tiny_strain", "gaussfit",
                 "table2_methods", "strain.csv", "decision_map_defocus", "decision_map.csv", "f1_vs_spacing"):
        assert name in html, name


def test_rerun_does_nothing(tiny_run):
    res = snakemake(tiny_run, "-n", "--cores", "2", "--configfile", TINY)
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr


def test_changing_one_method_parameter_reruns_only_that_method(tiny_run):
    config = yaml.safe_load((tiny_run / TINY).read_text())
    config["methods"]["log"] = {"threshold": 0.12}
    changed = tiny_run / "tests" / "config" / "tiny_changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    res = snakemake(tiny_run, "-n", "--cores", "2", "--configfile", str(changed))
    assert res.returncode == 0, res.stderr
    counts = job_counts(res.stdout + res.stderr)
    # one infer job per scored dataset (test, scale, failure, strain), then what reads its positions; every
    # overlay figure reads the per-image table (which picks the hardest and easiest image), so all are redrawn
    # and the method's sweep job with the sweep report
    assert counts == {"infer": 4, "evaluate": 1, "strain": 1, "tables": 1, "figure_detections": len(config["methods"]),
                      "figures": 1, "figure_strain": 1, "sweep_locate": 1, "sweep_report": 1, "all": 1}, counts
    text = res.stdout + res.stderr
    assert "results/positions/log/tiny_mos2" in text
    assert "output: results/positions/gaussfit" not in text  # other methods' positions are only read
    assert "output: results/positions/threshold_centroid" not in text


def _digest(path: Path, drop_time: bool) -> str:
    if drop_time and path.suffix == ".csv":
        df = pd.read_csv(path)
        df = df.drop(columns=[c for c in df.columns if c.startswith("time_")])
        return hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_config_same_bytes(tiny_run):
    # Every kind of random draw rerun from scratch (--forceall of these targets and everything they need):
    # the simulated series (the sweep's too), their alignment and labels, the library, the training of both
    # networks and their positions, the chemistry fields, fusion and bootstrap.  The rules downstream of
    # these (scores, tables, figures) are deterministic functions of them; rerunning all of them doubled the
    # suite's longest test (the ptychography job has its own same-bytes test in test_ptycho).
    results = tiny_run / "results"
    patterns = ["series/*.h5", "aligned/*.h5", "training/*.h5", "labels/*.csv", "library/*.h5", "models/*.pt",
                "models/*.json", "positions/atomid/*.csv", "positions/atomsegnet/*.csv", "tables/chemistry_*.csv"]
    files = sorted(p for pat in patterns for p in results.glob(pat))
    assert len(files) >= 20 and any(p.match("tables/chemistry_maps.csv") for p in files)
    before = {p: (_digest(p, True), p.stat().st_mtime_ns) for p in files}
    res = snakemake(tiny_run, *[str(p.relative_to(tiny_run)) for p in files], "--cores", "2", "--configfile", TINY,
                    "--forceall")
    assert res.returncode == 0, res.stderr[-3000:]
    assert all(p.stat().st_mtime_ns != before[p][1] for p in files)  # every one was made again
    assert {p: _digest(p, True) for p in files} == {p: d for p, (d, _) in before.items()}


def test_failed_rule_leaves_no_output(tmp_path):
    work = copy_repo(tmp_path)
    series = work / "results" / "series"
    series.mkdir(parents=True)
    (series / "tiny_mos2.h5").write_bytes(b"corrupt")
    res = snakemake(work, "results/aligned/tiny_mos2.h5", "--cores", "1", "--configfile", TINY)
    assert res.returncode != 0
    assert not (work / "results" / "aligned" / "tiny_mos2.h5").exists()
    log = (work / "results" / "logs" / "align_series" / "tiny_mos2.log").read_text()
    assert "tiny_mos2.h5" in log and "cannot read series" in log


def test_every_rule_names_a_parsable_conda_env():
    rule_files = sorted((REPO / "workflow" / "rules").glob("*.smk"))
    n_rules = 0
    for path in rule_files:
        text = path.read_text()
        blocks = re.split(r"^rule ", text, flags=re.M)[1:]
        for block in blocks:
            n_rules += 1
            m = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", block)
            assert m, f"rule {block.split(':')[0]} in {path.name} has no conda env"
            env = (path.parent / m.group(1)).resolve()
            assert env.is_file(), env
            spec = yaml.safe_load(env.read_text())
            assert isinstance(spec["name"], str)
            assert isinstance(spec["channels"], list) and spec["channels"]
            assert isinstance(spec["dependencies"], list) and any(str(d).startswith("python") for d in
                                                                  spec["dependencies"])
    assert n_rules >= 8


def test_schema_defaults_equal_code_defaults():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = dict(schema["properties"]["datasets"]["items"]["properties"])
    for key in ("name", "split", "source", "path", "pixel_size_override_pm", "truth_kinds"):
        props.pop(key)
    defaults = SeriesSpec()
    for key, spec in props.items():
        value = getattr(defaults, key)
        assert (list(value) if isinstance(value, tuple) else value) == spec["default"], key
    assert set(props) == {f.name for f in dataclasses.fields(SeriesSpec)}
    lib_props = schema["properties"]["library"]["properties"]
    lib_defaults = LibrarySpec()
    for key, spec in lib_props.items():
        value = getattr(lib_defaults, key)
        assert (list(value) if isinstance(value, tuple) else value) == spec["default"], key
    assert set(lib_props) == {f.name for f in dataclasses.fields(LibrarySpec)}
    sweep_props = schema["properties"]["sweeps"]["items"]["properties"]
    sweep_defaults = SweepSpec()
    for key, spec in sweep_props.items():
        value = getattr(sweep_defaults, key)
        assert (list(value) if isinstance(value, tuple) else value) == spec["default"], key
    assert set(sweep_props) == {f.name for f in dataclasses.fields(SweepSpec)}
    align_props = schema["properties"]["align"]["properties"]
    align_defaults = inspect.signature(align_series).parameters
    for key, spec in align_props.items():
        assert align_defaults[key].default == spec["default"], key

    def walk(node, path="config"):
        if isinstance(node, dict) and "properties" in node:
            for key, sub in node["properties"].items():
                assert "description" in sub, f"{path}.{key} lacks a description"
                # release: absent from a config unless the shipped weights are being made
                assert "default" in sub or f"{path}.{key}" == "config.release", f"{path}.{key} lacks a default"
                walk(sub, f"{path}.{key}")
        if isinstance(node, dict) and isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}.*")
        if isinstance(node, dict) and isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema)


def test_real_files_dataset_runs_through_the_workflow(tmp_path):
    """source: files: the temul-toolkit example HAADF images (MoS2 .dm3, Au nanoparticles .emd) are read
    (pixel size from the metadata), labelled and located; without truth they are scored against the
    reference labels only."""
    from test_real_files import temul_examples

    work = copy_repo(tmp_path)
    folder = work / "resources" / "series" / "real_mos2"
    folder.mkdir(parents=True)
    shutil.copy(temul_examples() / "example_Se_implanted_MoS2.dm3", folder)
    (work / "resources" / "series" / "real_au").mkdir()
    shutil.copy(temul_examples() / "example_Au_nanoparticle.emd", work / "resources" / "series" / "real_au")
    config = yaml.safe_load((work / TINY).read_text())
    config["datasets"] = [{"name": "real_mos2", "split": "test", "source": "files"},
                          {"name": "real_au", "split": "test", "source": "files"}]
    config["methods"] = {"gaussfit": {}, "log": {}}
    config["sweeps"] = []
    config["chemistry"]["datasets"] = []  # (the tiny run covers these)
    config["ptycho"]["enabled"] = False
    for entry in config["models"].values():  # (models merge with config.yaml's; none is trained here)
        entry["sources"] = ["library"]
    # As the main config (a --configfile would merge its methods with config.yaml's eleven).
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    res = snakemake(work, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    per_image = pd.read_csv(work / "results" / "tables" / "per_image.csv")
    assert set(per_image.dataset) == {"real_mos2", "real_au"}
    assert set(per_image.reference) == {"labels"}
    assert len(per_image) == 4  # two methods x two single-frame datasets
    # The Gaussian fit finds the columns in both; LoG's fixed threshold (the study's 0.1 on the image
    # scaled to 0-1) finds them in MoS2 but not in the Au particles, whose thickness contrast takes the range.
    assert (per_image.query("method == 'gaussfit' or dataset == 'real_mos2'").n_pred > 100).all()
    log = (work / "results" / "logs" / "import_series" / "real_mos2.log").read_text()
    assert "12.7 pm/px" in log
    log = (work / "results" / "logs" / "import_series" / "real_au.log").read_text()
    assert "7.498 pm/px" in log


def test_real_chemistry_field_runs_through_the_workflow(tmp_path):
    """chemistry.files: a HAADF and EDX maps read as images (here a simulated field written as .tif), no truth:
    fused maps, every located column's composition, a figure; a map of the wrong size fails in one line."""
    from atomloc.io.images import write_image
    from atomloc.simulate.multimodal import MultimodalSpec, simulate_multimodal

    work = copy_repo(tmp_path)
    folder = work / "resources" / "chemistry"
    folder.mkdir(parents=True)
    fld = simulate_multimodal(MultimodalSpec(shape_px=(64, 64), dopants={"W": 0.1}, edx_counts_per_pixel=0.2,
                                             seed=2))
    write_image(folder / "haadf.tif", fld["haadf"])
    for e, m in zip(fld["elements"], fld["edx"]):
        write_image(folder / f"{e}.tif", m)
    entry = {"name": "field1", "haadf": "resources/chemistry/haadf.tif",
             "edx": {e: f"resources/chemistry/{e}.tif" for e in fld["elements"]}, "sites": ["Mo", "S2"],
             "dopants": ["W"], "dopant_host": "Mo", "pixel_size_pm": 20.0}
    (work / "chem.yaml").write_text(yaml.safe_dump({"chemistry": {"datasets": [], "files": [entry]}}))
    target = "results/chemistry/files/field1/columns.csv"
    res = snakemake(work, target, "results/figures/chemistry/field1.png", "--cores", "2", "--configfile", "chem.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    columns = pd.read_csv(work / target)
    truth = pd.DataFrame(fld["columns"])
    assert abs(len(columns) - len(truth)) <= 3
    assert abs((columns.composition == "W").sum() - (truth.element == "W").sum()) <= 1
    assert np.load(work / "results" / "chemistry" / "files" / "field1" / "fused.npy").shape == (3, 64, 64)
    # a map of another size: the rule fails naming it and leaves no output
    write_image(folder / "W.tif", fld["edx"][2][:30])
    shutil.rmtree(work / "results" / "chemistry")
    res = snakemake(work, target, "--cores", "2", "--configfile", "chem.yaml")
    assert res.returncode != 0 and not (work / target).exists()
    log = (work / "results" / "logs" / "chemistry" / "files" / "field1.log").read_text()
    assert "W.tif: (30, 64) pixels" in log


def test_files_dataset_without_files_names_it(tmp_path):
    work = copy_repo(tmp_path)
    config = yaml.safe_load((work / TINY).read_text())
    config["datasets"].append({"name": "nothing_here", "split": "test", "source": "files"})
    (work / "nofiles.yaml").write_text(yaml.safe_dump(config))
    res = snakemake(work, "-n", "--cores", "1", "--configfile", "nofiles.yaml")
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "nothing_here" in text and "resources/series/nothing_here" in text


# A table of bad configs: `snakemake -n` fails in a few lines naming the key, the value and the rule
# (no schema dump, no traceback of atomloc's), and writes nothing.
BAD_CONFIGS = [
    ("range", lambda c: c.update(evaluate={"match_radius_frac": 5}),
     "config: evaluate.match_radius_frac = 5: 5 is greater than the maximum of 1", "rule: maximum 1"),
    ("type", lambda c: c["datasets"][0].update(n_frames="two"),
     "config: datasets[0].n_frames = 'two': 'two' is not of type 'integer'", "rule: type 'integer'"),
    ("enum", lambda c: c["datasets"][0].update(split="validation"),
     "config: datasets[0].split = 'validation': 'validation' is not one of", "rule: enum"),
    ("unknown_top_key", lambda c: c.update(evalute={}), "config: unknown key evalute = {}",
     "rule: (top level) takes only the keys of"),
    ("unknown_dataset_key", lambda c: c["datasets"][0].update(materal="MoS2"),
     "config: unknown key datasets[0].materal = 'MoS2'", "rule: datasets[0] takes only the keys of"),
    ("files_with_simulation_key",
     lambda c: c["datasets"].append({"name": "real", "source": "files", "pixel_size_pm": 12.0}),
     "datasets[real]: pixel_size_pm not read by a source: files dataset", "pixel_size_override_pm replaces it"),
    ("simulated_with_files_key", lambda c: c["datasets"][0].update(pixel_size_override_pm=12.0),
     "datasets[tiny_mos2]: pixel_size_override_pm only for source: files", "pixel_size_pm sets its pixel size"),
    ("method_parameter", lambda c: c.update(methods={"log": {"overlap": -1}}),
     "method 'log': overlap=-1: expected a number in [0, 1]", None),
    ("method_parameter_type", lambda c: c.update(methods={"log": {"threshold": "abc"}, "gaussfit": {}}),
     "method 'log': threshold='abc': expected a number >= 0", None),
    ("method_unknown_parameter", lambda c: c.update(methods={"log": {"thresh": 1}}), "thresh", None),
    ("columns", lambda c: c.update(methods={"gaussfit": {"columns": "light"}}),
     "methods.gaussfit: columns='light': expected one of 'all', 'heavy'", None),
    ("sweep_without_focus", lambda c: c["sweeps"][0].update(defocus_nm=[3.0]),
     "sweeps[tiny].defocus_nm: must contain 0 (the in-focus dose sweep)", None),
    ("sweep_unknown_method", lambda c: c.update(sweep_report={"methods": ["gausfit"]}),
     "sweep_report.methods: gausfit not under methods:", None),
    ("restore_unknown", lambda c: c["restoration"].update(locate=["gaussfit@tv+nope"]),
     "restoration.locate: 'gaussfit@tv+nope': restoration 'tv+nope': 'nope' not registered", None),
    ("restore_unknown_method", lambda c: c["restoration"].update(locate=["gausfit@tv"]),
     "restoration.locate: 'gausfit@tv': method 'gausfit' is not registered", None),
]


@pytest.fixture(scope="module")
def bad_config_runs(tmp_path_factory):
    """Every case's `snakemake -n`, two at a time (each is a second-long parse on one core), by case."""
    from concurrent.futures import ThreadPoolExecutor

    repo = copy_repo(tmp_path_factory.mktemp("badcfg"))
    for case, change, _, _ in BAD_CONFIGS:
        config = yaml.safe_load((repo / TINY).read_text())
        change(config)
        (repo / f"{case}.yaml").write_text(yaml.safe_dump(config))
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = pool.map(lambda c: snakemake(repo, "-n", "--cores", "1", "--configfile", f"{c[0]}.yaml"), BAD_CONFIGS)
        return repo, dict(zip([c[0] for c in BAD_CONFIGS], runs))


@pytest.mark.parametrize("case,change,message,rule", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_fails_the_dry_run_in_a_few_lines(bad_config_runs, case, change, message, rule):
    bad_config_repo, runs = bad_config_runs
    res = runs[case]
    text = res.stdout + res.stderr
    assert res.returncode != 0
    assert message in text and (rule is None or rule in text), text[-2000:]
    assert "Failed validating" not in text and "Traceback" not in text
    # beyond Snakemake's own lines (the profile and --configfile notes, the error's file and line, its
    # stack lines): the message, and the rule on a second line
    ours = [line for line in text.splitlines() if line.strip() and " in file " not in line
            and not line.startswith(("Config file", "Using workflow specific profile", "  File "))]
    assert len(ours) <= 2, ours
    assert not (bad_config_repo / "results").exists()


def test_release_commit_sees_uncommitted_code_from_a_rule_script_path(tmp_path):
    """The sidecar's ``uncommitted_changes``: a rule's script dir is ``workflow/rules/../scripts``; code
    changes count, the shipped models do not."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_common", REPO / "workflow" / "scripts" / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    for d in ("atomloc/models", "workflow/rules", "workflow/scripts"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "atomloc" / "x.py").write_text("a = 1\n")
    (tmp_path / "atomloc" / "models" / "m.json").write_text("{}\n")
    git = {"cwd": tmp_path, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **git)
    subprocess.run(["git", "add", "."], **git)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], **git)
    scriptdir = tmp_path / "workflow" / "rules" / ".." / "scripts"
    assert common.release_commit(scriptdir)["uncommitted_changes"] is False
    (tmp_path / "atomloc" / "models" / "m.json").write_text('{"new": 1}\n')
    assert common.release_commit(scriptdir)["uncommitted_changes"] is False
    (tmp_path / "atomloc" / "x.py").write_text("a = 2\n")
    info = common.release_commit(scriptdir)
    assert info["uncommitted_changes"] is True and len(info["commit"]) == 40
