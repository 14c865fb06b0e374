rule evaluate:
    input:
        series="results/series/{dataset}.h5",
        labels="results/labels/{dataset}.csv",
        positions="results/positions/{method}/{dataset}.csv",
        timing="results/positions/{method}/{dataset}.json",
    output:
        metrics="results/metrics/{method}/{dataset}.csv",
    params:
        scoring=SCORING,
        transfer=config["align"]["alignment"],
    log:
        "results/logs/evaluate/{method}/{dataset}.log",
    benchmark:
        "results/benchmarks/evaluate/{method}/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/evaluate.py"


rule evaluate_labels:
    input:
        series="results/series/{dataset}.h5",
        aligned="results/aligned/{dataset}.h5",
        labels="results/labels/{dataset}.csv",
    output:
        metrics="results/label_metrics/{dataset}.csv",
    params:
        scoring=SCORING,
    log:
        "results/logs/evaluate_labels/{dataset}.log",
    benchmark:
        "results/benchmarks/evaluate_labels/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/evaluate_labels.py"
