rule reference_label:
    input:
        aligned="results/aligned/{dataset}.h5",
    output:
        labels="results/labels/{dataset}.csv",
    params:
        method=config["label"]["method"],
        params=config["label"]["params"],
    priority: train_chain_priority
    log:
        "results/logs/reference_label/{dataset}.log",
    benchmark:
        "results/benchmarks/reference_label/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/align.yaml"
    script:
        "../scripts/reference_label.py"


rule training_pairs:
    input:
        series="results/series/{dataset}.h5",
        labels="results/labels/{dataset}.csv",
    output:
        pairs="results/training/{dataset}.h5",
    priority: PRIORITY_TRAINING
    params:
        source=config["label"]["training_source"],
        transfer=config["align"]["alignment"],
    log:
        "results/logs/training_pairs/{dataset}.log",
    benchmark:
        "results/benchmarks/training_pairs/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/align.yaml"
    script:
        "../scripts/training_pairs.py"
