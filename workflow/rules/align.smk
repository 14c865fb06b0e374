rule align_series:
    input:
        series="results/series/{dataset}.h5",
    output:
        aligned="results/aligned/{dataset}.h5",
    params:
        align=config["align"],
    priority: train_chain_priority
    log:
        "results/logs/align_series/{dataset}.log",
    benchmark:
        "results/benchmarks/align_series/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/align.yaml"
    script:
        "../scripts/align_series.py"
