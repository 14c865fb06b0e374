# 4D-STEM ptychography against virtual images and HAADF (atomloc.analysis.ptycho): one abTEM scan per material,
# each dose and noise draw reconstructed, every image located and scored (light columns apart), then the tables
# and the modalities figure.  ptycho.gpu: true tags the benchmark gpu=1 (on SLURM the profile asks for a GPU);
# ptycho.device: auto runs on CUDA wherever torch finds it.
from atomloc.simulate.structures import MATERIALS

PTYCHO = config["ptycho"]
PTYCHO_MATERIALS = list(PTYCHO["materials"]) if PTYCHO["enabled"] else []
if len(set(PTYCHO_MATERIALS)) != len(PTYCHO_MATERIALS):
    raise AtomlocInputError(f"ptycho.materials: names must be unique, got {PTYCHO_MATERIALS}")
for _name in PTYCHO_MATERIALS:
    if _name not in MATERIALS:
        raise AtomlocInputError(f"ptycho.materials: unknown material {_name!r} (one of {', '.join(MATERIALS)})")
for _name in PTYCHO["locators"]:
    get_method(_name)  # a registered method, at parse time
PTYCHO_TABLES = ["ptycho_modalities", "ptycho_dose_to_detect"]
PTYCHO_OUTPUTS = (
    [f"results/tables/{stem}.{ext}" for stem in PTYCHO_TABLES for ext in ("csv", "md")]
    + [f"results/figures/ptycho/modalities.{ext}" for ext in ("png", "pdf")]
    if PTYCHO_MATERIALS
    else []
)


wildcard_constraints:
    ptycho_material="|".join(PTYCHO_MATERIALS) or "no_ptycho_material",


rule ptycho_benchmark:
    output:
        rows="results/ptycho/{ptycho_material}/rows.csv",
        examples="results/ptycho/{ptycho_material}/examples.npz",
    params:
        settings={k: PTYCHO[k] for k in ("doses", "seeds", "scan_step_A", "min_size_A", "n_iterations",
                                         "batch_size", "learning_rate", "locators", "seed")},
        device=PTYCHO["device"],
    priority: PRIORITY_LONG_JOB
    log:
        "results/logs/ptycho/{ptycho_material}.log",
    benchmark:
        "results/benchmarks/ptycho/{ptycho_material}.tsv"
    threads: 2
    resources:
        mem_mb=6000,  # 5.7 GB max RSS measured at the default size (the abTEM multislice)
        runtime=30,
        gpu=int(PTYCHO["gpu"]),
    conda:
        "../../envs/ptycho.yaml"
    script:
        "../scripts/ptycho_benchmark.py"


rule ptycho_report:
    input:
        rows=expand("results/ptycho/{ptycho_material}/rows.csv", ptycho_material=PTYCHO_MATERIALS),
        examples=expand("results/ptycho/{ptycho_material}/examples.npz", ptycho_material=PTYCHO_MATERIALS),
    output:
        tables=[f"results/tables/{stem}.{ext}" for stem in PTYCHO_TABLES for ext in ("csv", "md")],
        figure=report("results/figures/ptycho/modalities.png", caption="../report/ptycho_modalities.rst",
                      category="Ptychography", labels={"figure": "modalities"}),
        figure_pdf="results/figures/ptycho/modalities.pdf",
    params:
        materials=PTYCHO_MATERIALS,
        target=PTYCHO["light_recall_target"],
        n_boot=config["sweep_report"]["n_boot"],
        seed=config["sweep_report"]["seed"],
    log:
        "results/logs/ptycho/report.log",
    benchmark:
        "results/benchmarks/ptycho/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/ptycho.yaml"
    script:
        "../scripts/ptycho_report.py"
