# Helper functions shared by the rule files (no rules here).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))

from atomloc.analysis.restoration import truth_kind
from atomloc.core.errors import AtomlocInputError, MissingDependencyError
from atomloc.learn.spec import TrainSpec
from atomloc.locate.columns import check_columns
from atomloc.locate.learned import BLOB_HEADS
from atomloc.locate.nets import ARCHITECTURES, RESTORATION_TARGETS, RESTORER
from atomloc.locate.registry import get_method, split_method
from atomloc.simulate.library import LibrarySpec
from atomloc.simulate.spec import SeriesSpec
from atomloc.simulate.sweep import SWEEP_SPLIT, expand_sweeps

LEARNED = ARCHITECTURES  # the learned methods: each is trained by train_model and run by infer_learned
HEADS = BLOB_HEADS  # atomid's alternative detection heads (table 3); nms is atomid itself


def _sorted_keys(node):
    """Recursively key-sorted copy of the config: Snakemake's params rerun trigger compares
    reprs, so the order of keys in a config file must not cause reruns."""
    if isinstance(node, dict):
        return {k: _sorted_keys(node[k]) for k in sorted(node)}
    if isinstance(node, list):
        return [_sorted_keys(v) for v in node]
    return node


config.update(_sorted_keys(config))
# The controlled sweeps become datasets (one per material and pixel size) before anything reads the datasets.
SWEEPS, _sweep_datasets = expand_sweeps(config["sweeps"])
if any(d.get("split") == SWEEP_SPLIT for d in config["datasets"]):
    raise AtomlocInputError("datasets: split: sweep is written by the sweeps key, not declared by hand")
config["datasets"] = config["datasets"] + [_sorted_keys(d) for d in _sweep_datasets]


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_\-]*",
    method=r"[A-Za-z0-9_]+(@[A-Za-z0-9_+]+)?",
    model="|".join(LEARNED),
    head="|".join(HEADS),


def _check_config():
    """Checks the JSON schema cannot express: method names and parameters, simulation ranges."""
    for name, params in config["methods"].items():
        # "columns" (all | heavy) is no method parameter: locate() keeps all or the brightest sublattice.
        check_columns(params.get("columns", "all"), f"methods.{name}")
        get_method(name).resolve({k: v for k, v in params.items() if k != "columns"})
    label = config["label"]
    get_method(label["method"]).resolve(label["params"])
    get_method(label["method"]).check_installed()
    names = [d["name"] for d in config["datasets"]]
    if len(set(names)) != len(names):
        raise AtomlocInputError(f"datasets: names must be unique, got {names}")
    for entry in config["datasets"]:
        if entry.get("source", "simulate") == "files":
            series_files(entry["name"])  # raises naming the dataset when nothing is there to read
        else:
            SeriesSpec.from_mapping(_simulation_keys(entry), name=f"datasets[{entry['name']}]")
    if not _split_names("test"):
        raise AtomlocInputError("datasets: at least one dataset needs split: test (the benchmark runs on them)")
    for name in _split_names("strain"):
        entry = dataset_entry(name)
        if entry.get("source", "simulate") != "simulate" or entry.get("material", "MoS2") == "amorphous_C_atoms":
            raise AtomlocInputError(f"datasets[{name}]: split: strain needs a simulated crystal (its strain_field "
                                    "is the truth the strain maps are scored against)")
    LibrarySpec.from_mapping(config["library"], name="library")
    for name in sorted(set(config["methods"]) & set(LEARNED)):
        if name not in config["models"]:
            raise AtomlocInputError(f"methods.{name}: a learned method needs its training under models.{name}")
    for name, entry in config["models"].items():
        TrainSpec.from_mapping({"architecture": name, **entry["train"]}, name=f"models.{name}.train")
        if "series" in entry["sources"] and not _split_names("train"):
            raise AtomlocInputError(f"models.{name}.sources: 'series' needs at least one dataset with split: train")


def _split_names(split):
    return sorted(d["name"] for d in config["datasets"] if d.get("split", "test") == split)


def dataset_entry(name):
    return next(d for d in config["datasets"] if d["name"] == name)


_NOT_SIMULATION = DATASET_KEYS + FILES_KEYS  # (config.smk)


def _simulation_keys(entry):
    return {k: v for k, v in entry.items() if k not in _NOT_SIMULATION}


def _source_names(source):
    return sorted(d["name"] for d in config["datasets"] if d.get("source", "simulate") == source)


def _names_regex(names):
    """A wildcard constraint matching exactly these dataset names (none: a pattern that never matches)."""
    return "|".join(names) if names else "(?!)"


def series_files(name):
    """The microscope files of a ``source: files`` dataset, in frame order.

    ``path`` is one file (e.g. a multi-frame .dm4) or a folder whose supported
    files are frames sorted by name; default ``resources/series/<name>/``.
    """
    from atomloc.io.images import MICROSCOPE_READERS

    entry = dataset_entry(name)
    path = Path(entry.get("path") or f"resources/series/{name}")
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in MICROSCOPE_READERS)
    else:
        files = []
    if not files:
        raise AtomlocInputError(
            f"datasets[{name}]: source: files, but {path} is neither a microscope file nor a folder holding "
            f"one ({', '.join(MICROSCOPE_READERS)})"
        )
    return [str(p) for p in files]


def simulation_spec(name):
    """The simulation keys of one dataset (its entry without 'name')."""
    return _simulation_keys(dataset_entry(name))


_check_config()

# The sweep datasets are simulated, run and scored by sweeps.smk (truth only: no alignment, no labels).
DATASETS = sorted(d["name"] for d in config["datasets"] if d.get("split") != SWEEP_SPLIT)
# The benchmark scores methods on the test split; the learned methods train on the train split.
TEST_DATASETS = _split_names("test")
TRAIN_DATASETS = _split_names("train")
# Every dataset but the train split is run through every method and scored.
SCORED_DATASETS = sorted(d["name"] for d in config["datasets"] if d.get("split", "test") not in ("train", SWEEP_SPLIT))
STRAIN_DATASETS = _split_names("strain")
SWEEP_DATASETS = _split_names(SWEEP_SPLIT)


# Job priorities (snakemake prefers higher ones when cores are free): the train series' chain first (it feeds
# the networks' training, the longest jobs), then the long single jobs that nothing else waits for.
PRIORITY_TRAINING = 50
PRIORITY_LONG_JOB = 40


def train_chain_priority(wildcards):
    """Priority of a series job: the train split's simulation, alignment and labels come first."""
    return PRIORITY_TRAINING if wildcards.dataset in TRAIN_DATASETS else 0


def dataset_splits():
    """Dataset name -> split, for the tables (the sweeps have their own)."""
    return {d["name"]: d.get("split", "test") for d in config["datasets"] if d["name"] in DATASETS}
SIMULATED = _source_names("simulate")
IMPORTED = _source_names("files")


def _skipped_methods():
    """Configured methods whose optional package is not installed: name -> reason."""
    skipped = {}
    for name in sorted(config["methods"]):
        try:
            get_method(name).check_installed()
        except MissingDependencyError as exc:
            skipped[name] = str(exc)
    return skipped


SKIPPED_METHODS = _skipped_methods()
for _reason in SKIPPED_METHODS.values():
    print(f"atomloc: skipping a configured method: {_reason}", file=sys.stderr)
METHODS = sorted(set(config["methods"]) - set(SKIPPED_METHODS))
if not METHODS:
    raise AtomlocInputError("methods: none of the configured methods is installed")
SCORING = config["evaluate"]


def n_frames(dataset):
    """Frames of a simulated dataset (None for files: known only once they are read)."""
    entry = dataset_entry(dataset)
    if entry.get("source", "simulate") == "files":
        return None
    return int(entry.get("n_frames", SeriesSpec().n_frames))


def truth_kinds(dataset):
    """The column kinds scored in one dataset's truth (its own truth_kinds, else evaluate.truth_kinds)."""
    return list(dataset_entry(dataset).get("truth_kinds") or SCORING["truth_kinds"])


def scoring(dataset):
    """evaluate: settings for one dataset."""
    return {**SCORING, "truth_kinds": truth_kinds(dataset)}


def method_params(wildcards):
    """The config parameters of one method (of ``m`` for ``m@restoration``): changing them reruns that
    method's jobs only."""
    return dict(config["methods"][split_method(wildcards.method)[0]])


TABLES = ("methods", "methods_vs_labels", "per_image", "labels", "table1_atomid_per_image", "table2_methods",
          "table3_heads_timing", "scale", "dose", "conditions", "failure", "lattice_precision", "strain",
          "provenance")
SWEEP_TABLES = ("sweep_curves", "sweep_dose_to_detect", "sweep_efficiency", "decision_map", "sweep_monotone",
                "restore_then_locate")
SWEEP_FIGURES = ("f1_vs_dose", "f1_vs_defocus", "f1_vs_spacing", "rmse_over_crlb_vs_dose", "decision_map_defocus",
                 "decision_map_spacing")
FIGURES = ("f1_vs_dose", "f1_vs_fov", "rmse_vs_crlb", "training_curves", "label_errors")


def heads_metrics(wildcards):
    """AtomID-net's alternative heads, scored (table 3), when atomid is benchmarked."""
    if "atomid" not in METHODS:
        return []
    return expand("results/heads_metrics/{head}.csv", head=HEADS)


def final_outputs():
    tables = [f"results/tables/{stem}.{ext}" for stem in TABLES for ext in ("csv", "md")]
    figures = [f"results/figures/detections/{method}.{ext}" for method in METHODS for ext in ("png", "pdf")]
    figures += [f"results/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")]
    figures += [f"results/figures/strain/{d}.{ext}" for d in STRAIN_DATASETS for ext in ("png", "pdf")]
    figures += [f"results/figures/series/{d}.{ext}" for d in DATASETS for ext in ("png", "pdf")]
    if SWEEPS:
        tables += [f"results/tables/{stem}.{ext}" for stem in SWEEP_TABLES for ext in ("csv", "md")]
        figures += [f"results/figures/sweeps/{name}.{ext}" for name in SWEEP_FIGURES for ext in ("png", "pdf")]
    if SWEEPS and RESTORE_QUALITY:
        tables += [f"results/tables/restoration_quality.{ext}" for ext in ("csv", "md")]
        figures += [f"results/figures/sweeps/restoration_examples.{ext}" for ext in ("png", "pdf")]
    if CHEM_DATASETS:
        tables += [f"results/tables/{stem}.{ext}" for stem in CHEM_TABLES for ext in ("csv", "md")]
        figures += [f"results/figures/chemistry/maps.{ext}" for ext in ("png", "pdf")]
    tables += [f"results/chemistry/files/{name}/{f}" for name in CHEM_FILES for f in ("columns.csv", "fused.npy")]
    figures += [f"results/figures/chemistry/{name}.{ext}" for name in CHEM_FILES for ext in ("png", "pdf")]
    tables += PTYCHO_OUTPUTS  # the ptychography tables and figure (empty when ptycho.enabled is false)
    training = [f"results/training/{dataset}.h5" for dataset in TRAIN_DATASETS]
    models = [f"results/models/{m}.{ext}" for m in METHODS if m in LEARNED for ext in ("pt", "json")]
    return tables + figures + training + models


def _sweep_methods():
    """The methods run on the sweeps: sweep_report.methods (all configured ones when empty), installed."""
    chosen = config["sweep_report"]["methods"] or sorted(config["methods"])
    unknown = sorted(set(chosen) - set(config["methods"]))
    if unknown:
        raise AtomlocInputError(f"sweep_report.methods: {', '.join(unknown)} not under methods: "
                                f"({', '.join(sorted(config['methods']))})")
    return sorted(set(chosen) & set(METHODS))


RESTORATION = config["restoration"]


def _restore_then_locate():
    """restoration.locate: ``method@restoration`` entries whose method runs here, each checked (a name that
    is not registered fails the parse); entries whose method is not under methods: or not installed, or
    whose restoration cannot run here, are reported like skipped methods."""
    chosen = []
    for entry in RESTORATION["locate"]:
        base, chain = split_method(entry)
        try:
            get_method(entry)
        except AtomlocInputError as exc:
            raise AtomlocInputError(f"restoration.locate: {entry!r}: {exc}") from None
        if base == "atomap":
            raise AtomlocInputError(f"restoration.locate: {entry!r}: Atomap runs in its own rule and environment "
                                    "and is not run on restored images")
        if base not in config["methods"]:
            why = f"{base} is not under methods:"
        else:
            why = None if base in METHODS else f"{base} is not installed"
        why = why or _restoration_missing(chain)
        if why is None:
            chosen.append(entry)
        else:
            print(f"atomloc: skipping restoration.locate {entry}: {why}", file=sys.stderr)
    return chosen


def restorer_weights(methods):
    """The shipped restorer weights (and sidecars) that ``method@restoration`` entries or restoration chains
    read: inputs of their jobs, so new weights rerun them."""
    from atomloc.locate.learned import shipped_model
    from atomloc.locate.nets import sidecar_path  # not .models: that imports torch, 3 s of every snakemake start

    names = {s for m in methods for s in (split_method(m)[1] or m).split("+") if s in RESTORATION_TARGETS}
    return [str(p) for n in sorted(names) for p in (shipped_model(n), sidecar_path(shipped_model(n)))]


def _restoration_missing(chain):
    """Why a restoration chain cannot run here (a package or the shipped weights missing), else None."""
    from atomloc.locate.registry import get_restorations

    try:
        for step in get_restorations(chain):
            step.check_installed()
    except MissingDependencyError as exc:
        return str(exc)
    absent = [p for p in restorer_weights([chain]) if not Path(p).is_file()]
    if absent:
        return (f"no shipped weights {', '.join(absent)} (make them: snakemake --configfile "
                "workflow/configs/release.yaml --cores 2 release)")
    return None


for _chain in RESTORATION["quality"]:
    try:
        get_method(f"gaussfit@{_chain}")
        truth_kind(_chain)
    except AtomlocInputError as exc:
        raise AtomlocInputError(f"restoration.quality: {exc}") from None
RESTORE_QUALITY = []
for _chain in RESTORATION["quality"]:
    _why = _restoration_missing(_chain)
    if _why is None:
        RESTORE_QUALITY.append(_chain)
    else:
        print(f"atomloc: skipping restoration.quality {_chain}: {_why}", file=sys.stderr)
RESTORE_LOCATE = _restore_then_locate()
SWEEP_METHODS = _sweep_methods() + (RESTORE_LOCATE if SWEEPS else [])


def sweep_frames():
    """One record per sweep frame: its dataset, grid point and seed (atomloc.simulate.sweep)."""
    return [row for spec in SWEEPS for row in spec.frame_table()]


def sweep_scoring():
    """evaluate: settings of every sweep dataset, in SWEEP_DATASETS order."""
    return [scoring(d) for d in SWEEP_DATASETS]


def training_inputs(wildcards):
    """What one model trains on: the library and/or the train-split training pairs."""
    sources = config["models"][wildcards.model]["sources"]
    inputs = {}
    if "library" in sources:
        inputs["library"] = "results/library/library.h5"
    if "series" in sources:
        inputs["pairs"] = [f"results/training/{d}.h5" for d in TRAIN_DATASETS]
    return inputs


# --- the release weights (workflow/configs/release.yaml; rules in release.smk) ---

RELEASE = config.get("release", {})
RELEASE_MODELS = sorted(RELEASE.get("models", {}))
RELEASE_RESTORERS = sorted(RELEASE.get("restorers", {}))


def release_library_spec(part, restorer=None):
    """The release library (part=library) or its validation twin (same draw, own seed and size); for a
    ``restorer`` with its own ``library:`` settings, those laid over the release library's."""
    spec = dict(RELEASE["library"])
    if restorer is not None:
        spec.update(RELEASE["restorers"][restorer].get("library", {}))
    if part == "validation":
        spec.update(RELEASE.get("validation", {"n_images": 240, "seed": 1}))
    return spec


def release_restorer_library(restorer, part="library"):
    """The library file a release restorer trains (part=library) or is validated (validation) on."""
    own = "library" in RELEASE["restorers"][restorer]
    return f"results/release/{part}_{restorer}.h5" if own else f"results/release/{part}.h5"


def _check_release():
    """The release block's library, validation library and trainings, checked at parse time."""
    if not RELEASE:
        return
    if "library" not in RELEASE or not RELEASE_MODELS:
        raise AtomlocInputError("release: needs library and models (see workflow/configs/release.yaml)")
    for part in ("library", "validation"):
        LibrarySpec.from_mapping(release_library_spec(part), name=f"release.{part}")
    if release_library_spec("validation")["seed"] == release_library_spec("library").get("seed", 0):
        raise AtomlocInputError("release.validation.seed: must differ from release.library.seed (a held-out draw)")
    lo, hi = LibrarySpec.from_mapping(RELEASE["library"]).spacing_px_range
    if not lo <= RELEASE.get("inference_spacing_px", 7.0) <= hi:
        raise AtomlocInputError(f"release.inference_spacing_px: must lie in release.library.spacing_px_range [{lo}, {hi}]")
    for name in RELEASE_MODELS:
        TrainSpec.from_mapping({"architecture": name, **RELEASE["models"][name]["train"]},
                               name=f"release.models.{name}.train")
        if RELEASE["models"][name]["sources"] != ["library"]:
            raise AtomlocInputError(f"release.models.{name}.sources: the shipped weights train on the release "
                                    "library only ([library])")
    for name in RELEASE_RESTORERS:
        spec = TrainSpec.from_mapping({"architecture": RESTORER, **RELEASE["restorers"][name]["train"]},
                                      name=f"release.restorers.{name}.train")
        if spec.target != RESTORATION_TARGETS[name]:
            raise AtomlocInputError(f"release.restorers.{name}.train.target: must be {RESTORATION_TARGETS[name]} "
                                    f"(got {spec.target})")
    for name in RELEASE_RESTORERS:
        for part in ("library", "validation"):
            spec = LibrarySpec.from_mapping(release_library_spec(part, name), name=f"release.restorers.{name}.library")
            if not spec.restoration_labels:
                raise AtomlocInputError(f"release.restorers.{name}: its library needs restoration_labels: true")


_check_release()
