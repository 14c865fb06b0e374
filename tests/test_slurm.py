"""The workflow submitted to a real single-node SLURM on localhost (tests/slurm_cluster.sh).

Runs as root with Debian's slurm-wlm and munge (installed here with apt when missing); it
skips, saying why, only when not root or when neither SLURM nor apt is available.
"""

import os
import re
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from test_workflow import REPO, TINY, copy_repo

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]
SCRIPT = REPO / "tests" / "slurm_cluster.sh"


def _need_slurm():
    if os.geteuid() != 0:
        pytest.skip("the SLURM test starts slurmctld/slurmd/munged and needs root")
    if shutil.which("slurmctld") is None:
        if shutil.which("apt-get") is None:
            pytest.skip("SLURM is not installed and apt-get is unavailable to install it")
        subprocess.run(["bash", str(SCRIPT), "install"], check=True, timeout=600)
    pytest.importorskip("snakemake_executor_plugin_slurm")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _need_slurm()
    state = tmp_path_factory.mktemp("slurm")
    subprocess.run(["bash", str(SCRIPT), "start", str(state)], check=True, timeout=120)
    yield state
    subprocess.run(["bash", str(SCRIPT), "stop", str(state)], timeout=60)
    # with the daemons gone a SLURM client must fail at once: snakemake's SLURM plugin asks `scontrol` at
    # every start, and the later workflow tests would each wait out the retries (9 s per snakemake call)
    start = time.monotonic()
    subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=60)
    assert time.monotonic() - start < 3.0


def _jobs():
    """Every job slurmctld still holds (MinJobAge=600 keeps finished ones), as dicts."""
    out = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True).stdout
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]


def test_tiny_workflow_runs_on_slurm(cluster, tmp_path):
    work = copy_repo(tmp_path)
    config = yaml.safe_load((work / TINY).read_text())
    # What reaches SLURM is the point here, not every rule (test_workflow's tiny run covers those): one test
    # and one train series, no sweeps, restorations, chemistry or ptychography (each SLURM job costs seconds
    # of start-up).
    config["datasets"] = [d for d in config["datasets"] if d["name"] in ("tiny_mos2", "tiny_train")]
    config["sweeps"] = []
    config["restoration"] = {"locate": [], "quality": []}
    config["chemistry"]["datasets"] = []
    config["ptycho"]["enabled"] = False
    config["methods"] = {"gaussfit": {}, "atomid": {}}
    # replace the default config (a --configfile would merge the methods mapping into it)
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    before = {j.get("JobId") for j in _jobs()}
    cmd = ["timeout", "1200", sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm",
           "--jobs", "4", "--default-resources", "slurm_account=root", "runtime=10", "mem_mb=1000",
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
           "--latency-wait", "5"]
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    methods = pd.read_csv(work / "results" / "tables" / "methods.csv").set_index("method")
    assert set(methods.index) == {"gaussfit", "atomid"}
    assert methods.loc["gaussfit", "f1_mean"] >= 0.95
    assert (work / "results" / "models" / "atomid.pt").is_file()

    jobs = [j for j in _jobs() if j.get("JobId") not in before]
    assert jobs, "no SLURM job was recorded"
    assert all(j["JobState"] == "COMPLETED" for j in jobs), [(j["JobName"], j["JobState"]) for j in jobs]
    by_rule = {}
    for j in jobs:
        # the plugin comments each job "rule_<rule>[_wildcards_<values>]"
        rule = re.sub(r"^rule_", "", j.get("Comment", "")).split("_wildcards")[0]
        by_rule.setdefault(rule, []).append(j)
    # local rules (tables, figures, all) never reach SLURM; computing rules do, with the profile's resources
    assert "tables" not in by_rule and "simulate_series" in by_rule, sorted(by_rule)
    sim = by_rule["simulate_series"][0]
    assert "mem=4000M" in sim["TRES"], sim["TRES"]
    train = by_rule["train_model"]
    assert all(j.get("TresPerJob") == "gres/gpu:1" or "gpu:1" in j.get("TresPerJob", "") for j in train), train
    assert all("cpu=2" in j["TRES"] for j in train)
    infer = by_rule["infer"]
    assert all("gpu" not in j.get("TresPerJob", "(null)") for j in infer)
