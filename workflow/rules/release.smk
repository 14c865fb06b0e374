# The pretrained weights shipped in the package: snakemake --configfile workflow/configs/release.yaml release
# (the release: block of the config; not part of the default run).

rule synthesize_release_library:
    output:
        library="results/release/{part}.h5",
    params:
        spec=lambda wildcards: release_library_spec(wildcards.part),
    log:
        "results/logs/release/{part}.log",
    benchmark:
        "results/benchmarks/release/{part}.tsv"
    wildcard_constraints:
        part="library|validation",
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/synthesize_library.py"


# A restorer with its own library settings (release.restorers.<name>.library) trains on its own draw.
use rule synthesize_release_library as synthesize_restorer_library with:
    output:
        library="results/release/{part}_{restoration}.h5",
    params:
        spec=lambda wildcards: release_library_spec(wildcards.part, wildcards.restoration),
    log:
        "results/logs/release/{part}_{restoration}.log",
    benchmark:
        "results/benchmarks/release/{part}_{restoration}.tsv"
    wildcard_constraints:
        part="library|validation",
        restoration="|".join(RESTORATION_TARGETS),


# GPU-tagged like train_model; on 2 CPU cores the two models train side by side, one core each.
rule train_release_model:
    input:
        library="results/release/library.h5",
    output:
        model="results/release/{model}.pt",
        sidecar="results/release/{model}.json",
        history="results/release/{model}_history.csv",
    params:
        train=lambda wildcards: {"architecture": wildcards.model, **RELEASE["models"][wildcards.model]["train"]},
    log:
        "results/logs/release/train_{model}.log",
    benchmark:
        "results/benchmarks/release/train_{model}.tsv"
    wildcard_constraints:
        model="|".join(LEARNED),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=180,
        gpu=1,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/train_model.py"


# The operating point (min_confidence / threshold) is chosen on the validation library, and the
# weights land in the package with everything about them in the sidecar.
rule calibrate_release_model:
    input:
        model="results/release/{model}.pt",
        library="results/release/library.h5",
        validation="results/release/validation.h5",
    output:
        model="atomloc/models/{model}.pt",
        sidecar="atomloc/models/{model}.json",
    params:
        inference_spacing_px=RELEASE.get("inference_spacing_px", 7.0),
    log:
        "results/logs/release/calibrate_{model}.log",
    benchmark:
        "results/benchmarks/release/calibrate_{model}.tsv"
    wildcard_constraints:
        model="|".join(LEARNED),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/calibrate_model.py"


# The restoration models (release.restorers): a restorer U-Net per target of the release library.
use rule train_release_model as train_release_restorer with:
    input:
        library=lambda wildcards: release_restorer_library(wildcards.restoration),
    output:
        model="results/release/{restoration}.pt",
        sidecar="results/release/{restoration}.json",
        history="results/release/{restoration}_history.csv",
    params:
        train=lambda wildcards: {"architecture": RESTORER, **RELEASE["restorers"][wildcards.restoration]["train"]},
    log:
        "results/logs/release/train_{restoration}.log",
    benchmark:
        "results/benchmarks/release/train_{restoration}.tsv"
    wildcard_constraints:
        restoration="|".join(RESTORATION_TARGETS),


# Validation on the validation library (PSNR of the raw and restored images against the target) and
# the weights into the package with everything about them in the sidecar.
rule ship_release_restorer:
    input:
        model="results/release/{restoration}.pt",
        library=lambda wildcards: release_restorer_library(wildcards.restoration),
        validation=lambda wildcards: release_restorer_library(wildcards.restoration, "validation"),
    output:
        model="atomloc/models/{restoration}.pt",
        sidecar="atomloc/models/{restoration}.json",
    log:
        "results/logs/release/ship_{restoration}.log",
    benchmark:
        "results/benchmarks/release/ship_{restoration}.tsv"
    wildcard_constraints:
        restoration="|".join(RESTORATION_TARGETS),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/ship_restorer.py"
