# One job per method over every scored dataset: scoring is cheap, job start-up is not.
rule evaluate:
    input:
        series=expand("results/series/{dataset}.h5", dataset=SCORED_DATASETS),
        labels=expand("results/labels/{dataset}.csv", dataset=SCORED_DATASETS),
        positions=expand("results/positions/{{method}}/{dataset}.csv", dataset=SCORED_DATASETS),
        timing=expand("results/positions/{{method}}/{dataset}.json", dataset=SCORED_DATASETS),
        crlb=expand("results/crlb/{dataset}.csv", dataset=SCORED_DATASETS),
        column_crlb=expand("results/crlb/{dataset}_columns.csv", dataset=SCORED_DATASETS),
    output:
        metrics="results/metrics/{method}.csv",
    params:
        scoring=[scoring(d) for d in SCORED_DATASETS],
        transfer=config["align"]["alignment"],
        name=lambda wildcards: wildcards.method,
    log:
        "results/logs/evaluate/{method}.log",
    benchmark:
        "results/benchmarks/evaluate/{method}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
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
        crlb="results/crlb/{dataset}.csv",
        column_crlb="results/crlb/{dataset}_columns.csv",
    params:
        scoring=lambda wildcards: scoring(wildcards.dataset),
        transfer=config["align"]["alignment"],
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


rule evaluate_head:
    input:
        series=expand("results/series/{dataset}.h5", dataset=TEST_DATASETS),
        labels=expand("results/labels/{dataset}.csv", dataset=TEST_DATASETS),
        positions=expand("results/heads/{{head}}/{dataset}.csv", dataset=TEST_DATASETS),
        timing=expand("results/heads/{{head}}/{dataset}.json", dataset=TEST_DATASETS),
        crlb=expand("results/crlb/{dataset}.csv", dataset=TEST_DATASETS),
        column_crlb=expand("results/crlb/{dataset}_columns.csv", dataset=TEST_DATASETS),
    output:
        metrics="results/heads_metrics/{head}.csv",
    params:
        scoring=[scoring(d) for d in TEST_DATASETS],
        transfer=config["align"]["alignment"],
        name=lambda wildcards: f"atomid_{wildcards.head}",
    log:
        "results/logs/evaluate_head/{head}.log",
    benchmark:
        "results/benchmarks/evaluate_head/{head}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/evaluate.py"


rule strain:
    input:
        series="results/series/{dataset}.h5",
        positions=expand("results/positions/{method}/{{dataset}}.csv", method=METHODS),
    output:
        summary="results/strain/{dataset}.csv",
        columns="results/strain/{dataset}_columns.csv",
    params:
        methods=METHODS,
        strain=config["strain"],
    log:
        "results/logs/strain/{dataset}.log",
    benchmark:
        "results/benchmarks/strain/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/strain.py"
