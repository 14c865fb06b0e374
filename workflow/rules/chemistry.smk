# Chemistry of each column: simulated HAADF + EDX fields, fused maps, per-column composition
# (atomloc.analysis.chemistry). One job per dataset (tune on its train fields, score its test fields),
# then the tables and the maps figure.
import importlib.util

from atomloc.analysis.chemistry import candidate_compositions
from atomloc.simulate.multimodal import MultimodalSpec

CHEMISTRY = config["chemistry"]
CHEM_DATASETS = {}
for _entry in CHEMISTRY["datasets"]:
    _entry = dict(_entry)
    _name = _entry.pop("name")
    if _name in CHEM_DATASETS:
        raise AtomlocInputError(f"chemistry.datasets: {_name!r} appears twice")
    MultimodalSpec.from_mapping(_entry, name=f"chemistry.datasets.{_name}")  # keys and ranges, at parse time
    CHEM_DATASETS[_name] = _entry
get_method(CHEMISTRY["locator"])
CHEM_PEER = bool(CHEMISTRY["peer"]) and importlib.util.find_spec("multimodal_fusion") is not None
if CHEMISTRY["peer"] and not CHEM_PEER:
    print("atomloc: skipping chemistry peer (the authors' multimodal-fusion): not installed "
          "(pip install 'atomloc[fusion]')", file=sys.stderr)
CHEM_TABLES = ["chemistry_maps", "chemistry_columns", "chemistry_dose_reduction"]
CHEM_FILES = {}
for _entry in CHEMISTRY["files"]:
    if _entry["name"] in CHEM_FILES:
        raise AtomlocInputError(f"chemistry.files: {_entry['name']!r} appears twice")
    candidate_compositions(_entry["sites"], dopants=_entry["dopants"], dopant_host=_entry["dopant_host"],
                           vacancy_element=_entry["vacancy_element"])  # the compositions parse
    CHEM_FILES[_entry["name"]] = _entry


wildcard_constraints:
    chem_dataset="|".join(CHEM_DATASETS) or "no_chemistry_dataset",
    chem_file="|".join(CHEM_FILES) or "no_chemistry_file",


rule chemistry_benchmark:
    output:
        **{key: f"results/chemistry/{{chem_dataset}}/{key}.csv" for key in ("quality", "columns", "tuning", "seconds")},
        examples="results/chemistry/{chem_dataset}/examples.h5",
    params:
        dataset=lambda wildcards: CHEM_DATASETS[wildcards.chem_dataset],
        settings={k: CHEMISTRY[k] for k in ("counts_per_pixel", "train_fields", "test_fields", "seed", "lambda_edx",
                                            "lambda_tv", "blur_sigma_px", "gamma", "n_iter", "locator", "peer_lambda_edx",
                                            "peer_lambda_tv", "column_sigma_px")},
        peer=CHEM_PEER,
    priority: PRIORITY_LONG_JOB
    log:
        "results/logs/chemistry/{chem_dataset}.log",
    benchmark:
        "results/benchmarks/chemistry/{chem_dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/chemistry.yaml"
    script:
        "../scripts/chemistry_benchmark.py"


rule chemistry_report:
    input:
        **{key: expand(f"results/chemistry/{{chem_dataset}}/{key}.csv", chem_dataset=list(CHEM_DATASETS))
           for key in ("quality", "columns", "tuning", "seconds")},
        examples=expand("results/chemistry/{chem_dataset}/examples.h5", chem_dataset=list(CHEM_DATASETS)),
    output:
        tables=[f"results/tables/{stem}.{ext}" for stem in CHEM_TABLES for ext in ("csv", "md")],
        figure=report("results/figures/chemistry/maps.png", caption="../report/chemistry_maps.rst",
                      category="Chemistry", labels={"figure": "maps"}),
        figure_pdf="results/figures/chemistry/maps.pdf",
    params:
        datasets=list(CHEM_DATASETS),
        target=CHEMISTRY["accuracy_target"],
        figure_counts=CHEMISTRY["figure_counts_per_pixel"],
        n_boot=config["sweep_report"]["n_boot"],
        seed=config["sweep_report"]["seed"],
    log:
        "results/logs/chemistry/report.log",
    benchmark:
        "results/benchmarks/chemistry/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/chemistry.yaml"
    script:
        "../scripts/chemistry_report.py"


# A real field (chemistry.files): fused maps and the composition of every located column, no truth.
rule chemistry_files:
    input:
        haadf=lambda wildcards: CHEM_FILES[wildcards.chem_file]["haadf"],
        edx=lambda wildcards: list(CHEM_FILES[wildcards.chem_file]["edx"].values()),
    output:
        columns="results/chemistry/files/{chem_file}/columns.csv",
        maps="results/chemistry/files/{chem_file}/fused.npy",
        figure=report("results/figures/chemistry/{chem_file}.png", caption="../report/chemistry_files.rst",
                      category="Chemistry", labels={"figure": "{chem_file}"}),
        figure_pdf="results/figures/chemistry/{chem_file}.pdf",
    params:
        entry=lambda wildcards: CHEM_FILES[wildcards.chem_file],
        locator=CHEMISTRY["locator"],
        gamma=CHEMISTRY["gamma"],
        n_iter=CHEMISTRY["n_iter"],
    log:
        "results/logs/chemistry/files/{chem_file}.log",
    benchmark:
        "results/benchmarks/chemistry/files/{chem_file}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/chemistry.yaml"
    script:
        "../scripts/chemistry_files.py"
