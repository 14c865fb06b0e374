"""Run-to-run spread of a trained model's F1 across training seeds.

    python benchmarks/seed_spread.py                          # atomid, seeds 0 1 2, config.yaml, results/
    python benchmarks/seed_spread.py --model atomsegnet --seeds 0 1 2 3 4
    python benchmarks/seed_spread.py --epochs 2 --out /tmp/spread   # a quick look (not the config's training)

What it measures: the model (``--model``, default atomid) is trained once per seed
exactly as the workflow's ``train_model`` rule trains it -- the config's
``models.<model>`` sources and ``train`` settings, only ``seed`` changed (and
``epochs`` where ``--epochs`` is given) -- on the inputs a workflow run left under
``--results`` (``library/library.h5`` and the train-split ``training/<dataset>.h5``;
run ``snakemake --cores 2`` first).  Each model then locates the columns of a fixed
evaluation set with the config's ``methods.<model>`` parameters, as the workflow's
``infer_learned`` / ``sweep_locate_learned`` rules do, and is scored against the
simulated truth (``atomloc.analysis.evaluate.evaluate_series``, the config's
``evaluate`` settings and each dataset's ``truth_kinds``).  The evaluation set is
the controlled-sweep frames in focus (defocus 0) at a dose >= 1e4 e/Å² (all pixel
sizes) where ``series/sweep_*.h5`` exist, else every frame of the test-split
series (``--eval`` chooses).  It prints per seed the mean F1, precision and recall
over those frames, then the spread of the mean F1 over the seeds (max - min, and
the standard deviation with ddof=1) and the line ``learned_spread_f1: <max - min>``
to copy into ``sweep_report`` of config.yaml (the margin a trained method's win in
the sweep decision map must exceed).

The models go to ``--out`` (default ``<results>/seed_spread/``: ``<model>_seed<k>.pt``
with its JSON sidecar and ``<model>_seed<k>_history.csv``), never to ``models/``.

Time: at the default config.yaml, training dominates: about 7 min per seed on one
core (``--threads 1``; the workflow's own atomid / atomsegnet trainings take 6-7 min
each), so about 21 min for the default three seeds, one after the other; scoring adds
well under a minute per seed (20 s for the 20 test-split frames on one core).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from atomloc.analysis.evaluate import evaluate_series, frame_crlb  # noqa: E402
from atomloc.core.errors import AtomlocInputError  # noqa: E402
from atomloc.io.series import Series, read_series  # noqa: E402
from atomloc.learn.data import training_data_from_files  # noqa: E402
from atomloc.learn.spec import TrainSpec  # noqa: E402
from atomloc.locate.nets import ARCHITECTURES  # noqa: E402
from atomloc.simulate.sweep import expand_sweeps  # noqa: E402

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MIN_DOSE_E_PER_A2 = 1.0e4


class SetupError(Exception):
    """A missing input or a bad option: reported in one line, exit code 2."""


@dataclass
class EvalSet:
    """One series and the frames of it that are scored."""

    name: str
    series: Series
    frames: np.ndarray
    truth_kinds: list
    crlb: pd.DataFrame


def load_config(path: Path) -> dict:
    """The config with the schema's defaults filled in, as the workflow sees it (when snakemake is installed)."""
    if not path.is_file():
        raise SetupError(f"no config at {path}")
    config = yaml.safe_load(path.read_text()) or {}
    try:
        from snakemake.utils import validate
    except ImportError:
        return config
    try:
        validate(config, str(SCHEMA))
    except Exception as exc:  # noqa: BLE001 - snakemake wraps jsonschema's error in a WorkflowError
        cause = exc.__cause__ or exc.__context__ or exc
        raise SetupError(f"{path}: not a valid config: {str(cause).splitlines()[0]}") from None
    return config


def _split_names(config: dict, split: str) -> list[str]:
    return sorted(d["name"] for d in config.get("datasets", []) if d.get("split", "test") == split)


def training_inputs(config: dict, results: Path, model: str) -> dict:
    """What ``model`` trains on (the workflow's ``training_inputs``): library path and training-pair paths."""
    sources = config["models"][model]["sources"]
    inputs = {}
    if "library" in sources:
        inputs["library"] = results / "library" / "library.h5"
    if "series" in sources:
        inputs["pairs"] = [results / "training" / f"{d}.h5" for d in _split_names(config, "train")]
    return inputs


def check_inputs(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SetupError(f"missing {', '.join(missing)}: run the workflow first (snakemake --cores 2)")


def evaluation_set(config: dict, results: Path, which: str, min_dose: float) -> tuple[list[EvalSet], str]:
    """The scored frames: in-focus high-dose sweep frames, or every frame of the test split."""
    scoring = config.get("evaluate", {})
    default_kinds = list(scoring.get("truth_kinds") or [])
    sweep_entries = expand_sweeps(config.get("sweeps") or [])[1]
    sweeps = [(e, results / "series" / f"{e['name']}.h5") for e in sweep_entries]
    present = [(e, p) for e, p in sweeps if p.is_file()]
    if which == "sweep" or (which == "auto" and present):
        if not sweeps:
            raise SetupError("--eval sweep: the config has no sweeps")
        check_inputs([p for _, p in sweeps] if which == "sweep" else [p for _, p in present])
        chosen, what = sweeps if which == "sweep" else present, \
            f"sweep frames in focus (defocus 0) at dose >= {min_dose:g} e/Å²"
    else:
        names = _split_names(config, "test")
        if not names:
            raise SetupError("the config has no test-split dataset to score on")
        entries = {d["name"]: d for d in config["datasets"]}
        chosen, what = [(entries[n], results / "series" / f"{n}.h5") for n in names], "every frame of the test split"
        check_inputs([p for _, p in chosen])
    out = []
    for entry, path in chosen:
        series = read_series(path)
        if series.truth is None:
            print(f"seed_spread: {path} has no truth (a real series): left out", file=sys.stderr)
            continue
        kinds = list(entry.get("truth_kinds") or default_kinds)
        frames = np.arange(series.n_frames)
        if entry.get("split") == "sweep":
            if series.defocus_nm is None or series.dose_e_per_A2 is None:
                raise SetupError(f"{path}: the series stores no per-frame defocus / dose")
            frames = np.flatnonzero((np.asarray(series.defocus_nm) == 0.0)
                                    & (np.asarray(series.dose_e_per_A2) >= min_dose))
        if len(frames):
            # the bound depends on the frames and the truth only: computed once, not per seed
            out.append(EvalSet(entry["name"], series, frames, kinds, frame_crlb(series, None, kinds or None)))
    if not out:
        raise SetupError(f"no frame to score ({what})")
    return out, what


def score(model_name: str, model_path: Path, method_params: dict, evals: list[EvalSet], scoring: dict
          ) -> pd.DataFrame:
    """Per-frame truth scores of one trained model on the evaluation set."""
    from atomloc.locate.registry import locate_series

    params = {**method_params, "model": str(model_path)}
    tables = []
    for ev in evals:
        positions, _ = locate_series(ev.series.frames[ev.frames], model_name, pixel_size_pm=ev.series.pixel_size_pm,
                                     name=ev.name, **params)
        positions["frame"] = ev.frames[positions["frame"].to_numpy(int)]
        table = evaluate_series(ev.series, None, positions, truth_kinds=ev.truth_kinds or None, crlb=ev.crlb,
                                **scoring)
        tables.append(table[table["frame"].isin(ev.frames) & (table["reference"] == "truth")])
    return pd.concat(tables, ignore_index=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:5]))
    p.add_argument("--config", default="config.yaml", help="workflow config (default: config.yaml)")
    p.add_argument("--results", default="results", help="the workflow's results folder (default: results)")
    p.add_argument("--model", default="atomid", choices=ARCHITECTURES, help="which learned method (default: atomid)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the config's epochs (a quick test; the spread is then not the config's)")
    p.add_argument("--eval", default="auto", choices=("auto", "sweep", "test"),
                   help="evaluation set: sweep frames, test split, or auto (sweep where its series exist)")
    p.add_argument("--min-dose", type=float, default=MIN_DOSE_E_PER_A2,
                   help=f"lowest dose of the scored sweep frames, e/Å² (default: {MIN_DOSE_E_PER_A2:g})")
    p.add_argument("--out", default=None, help="where the trained models go (default: <results>/seed_spread)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = p.parse_args(argv)
    try:
        return run(args)
    except (SetupError, AtomlocInputError) as exc:
        print(f"seed_spread: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    results, config_path = Path(args.results), Path(args.config)
    out = Path(args.out) if args.out else results / "seed_spread"
    if len(set(args.seeds)) < 2 or len(set(args.seeds)) != len(args.seeds):
        raise SetupError(f"--seeds: need at least two distinct seeds, got {args.seeds}")
    if args.threads < 1 or (args.epochs is not None and args.epochs < 1):
        raise SetupError("--threads and --epochs must be >= 1")
    protected = {(results / "models").resolve(), (REPO / "atomloc" / "models").resolve()}
    if out.resolve() in protected:
        raise SetupError(f"--out {out}: refusing to write over the workflow's or the shipped models")
    config = load_config(config_path)
    if args.model not in config.get("models", {}):
        raise SetupError(f"{config_path}: no models.{args.model}")
    train = {"architecture": args.model, **config["models"][args.model]["train"]}
    base = TrainSpec.from_mapping(train, name=f"models.{args.model}.train")
    inputs = training_inputs(config, results, args.model)
    check_inputs(([inputs["library"]] if "library" in inputs else []) + inputs.get("pairs", []))
    evals, what = evaluation_set(config, results, args.eval, args.min_dose)
    scoring = {k: v for k, v in config.get("evaluate", {}).items() if k in ("match_radius_frac", "border_frac")}
    method_params = dict((config.get("methods") or {}).get(args.model) or {})

    import torch

    from atomloc.learn.train import train_model
    from atomloc.locate.nets.models import pick_device, save_checkpoint

    torch.set_num_threads(args.threads)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("seed_spread")
    data, sources, extra = training_data_from_files(base, str(inputs["library"]) if "library" in inputs else None,
                                                    [str(p) for p in inputs.get("pairs", [])])
    n_frames = sum(len(ev.frames) for ev in evals)
    print(f"{args.model}: trained on {len(data)} images ({', '.join(sources)}) with models.{args.model}.train of "
          f"{config_path}, seed varied" + (f", epochs {args.epochs} (overridden)" if args.epochs else ""))
    print(f"scored on {n_frames} frames, {what}: "
          + ", ".join(f"{ev.name} ({len(ev.frames)})" for ev in evals) + "; against the truth")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        spec = TrainSpec.from_mapping({**train, "seed": seed, **({"epochs": args.epochs} if args.epochs else {})},
                                      name=f"models.{args.model}.train")
        t0 = time.perf_counter()
        log.info("seed %d: training %s on %d images", seed, args.model, len(data))
        model, history, summary = train_model(data, spec, log=log)
        train_s = time.perf_counter() - t0
        path = out / f"{args.model}_seed{seed}.pt"
        history.to_csv(out / f"{args.model}_seed{seed}_history.csv", index=False, float_format="%.6g")
        summary["n_images_by_source"] = summary.pop("sources")
        save_checkpoint(path, model, spec.architecture, {"training": {**summary, "sources": sources}, **extra})
        t0 = time.perf_counter()
        table = score(args.model, path, method_params, evals, scoring)
        rows.append({"seed": seed, "f1": table["f1"].mean(), "precision": table["precision"].mean(),
                     "recall": table["recall"].mean(), "val_f1": summary["val_f1"], "best_epoch": summary["best_epoch"],
                     "train_s": train_s, "score_s": time.perf_counter() - t0})
        log.info("seed %d: mean F1 %.4f over %d frames", seed, rows[-1]["f1"], len(table))
    table = pd.DataFrame(rows)
    f1 = table["f1"].to_numpy()
    spread, std = float(f1.max() - f1.min()), float(np.std(f1, ddof=1))
    print()
    shown = table.assign(**{c: table[c].map("{:.4f}".format) for c in ("f1", "precision", "recall", "val_f1")},
                         **{c: table[c].map("{:.1f}".format) for c in ("train_s", "score_s")})
    print(shown.astype(str).to_markdown(index=False, disable_numparse=True, colalign=["right"] * shown.shape[1]))
    print(f"\nspread of the mean F1 over {len(f1)} seeds: max - min {spread:.4f}, std (ddof=1) {std:.4f}")
    print(f"learned_spread_f1: {spread:.3f}")
    print(f"torch {torch.__version__}, numpy {np.__version__}, torch threads {torch.get_num_threads()}, "
          f"device {pick_device(None)}")
    print(f"models: {out}/{args.model}_seed<k>.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
