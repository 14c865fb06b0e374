rule synthesize_library:
    output:
        library="results/library/library.h5",
    params:
        spec=config["library"],
    priority: PRIORITY_TRAINING
    log:
        "results/logs/synthesize_library/library.log",
    benchmark:
        "results/benchmarks/synthesize_library/library.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/synthesize_library.py"


# GPU-tagged: on SLURM the profile asks for a GPU; locally it runs on whatever device torch finds.
rule train_model:
    input:
        unpack(training_inputs),
    output:
        model="results/models/{model}.pt",
        sidecar="results/models/{model}.json",
        history="results/models/{model}_history.csv",
    params:
        train=lambda wildcards: {"architecture": wildcards.model, **config["models"][wildcards.model]["train"]},
    priority: PRIORITY_TRAINING  # the longest jobs: start them as soon as their inputs exist
    log:
        "results/logs/train_model/{model}.log",
    benchmark:
        "results/benchmarks/train_model/{model}.tsv"
    # One thread: on the default 2 cores the two models train side by side, each starting as soon as its
    # inputs exist (a 2-thread job waits for both cores and then oversubscribes them).
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/train_model.py"


rule infer_learned:
    input:
        series="results/series/{dataset}.h5",
        model="results/models/{method}.pt",
    output:
        positions="results/positions/{method}/{dataset}.csv",
        timing="results/positions/{method}/{dataset}.json",
    params:
        method=lambda wildcards: wildcards.method,
        params=lambda wildcards, input: {**config["methods"][wildcards.method], "model": input.model},
    log:
        "results/logs/infer/{method}/{dataset}.log",
    benchmark:
        "results/benchmarks/infer/{method}/{dataset}.tsv"
    wildcard_constraints:
        method="|".join(LEARNED),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/infer.py"


ruleorder: infer_learned > infer


# AtomID-net's alternative detection heads (LoG, DoG, DoH on the same confidence map): table 3.
rule infer_head:
    input:
        series="results/series/{dataset}.h5",
        model="results/models/atomid.pt",
    output:
        positions="results/heads/{head}/{dataset}.csv",
        timing="results/heads/{head}/{dataset}.json",
    params:
        method="atomid",
        params=lambda wildcards, input: {**config["methods"]["atomid"], "model": input.model, "head": wildcards.head},
    log:
        "results/logs/infer_head/{head}/{dataset}.log",
    benchmark:
        "results/benchmarks/infer_head/{head}/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        "../../envs/learn.yaml"
    script:
        "../scripts/infer.py"
