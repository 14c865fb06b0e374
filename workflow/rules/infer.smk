rule infer:
    input:
        series="results/series/{dataset}.h5",
    output:
        positions="results/positions/{method}/{dataset}/{frame}.csv",
        timing="results/positions/{method}/{dataset}/{frame}.json",
    params:
        params=method_params,
    log:
        "results/logs/infer/{method}/{dataset}/{frame}.log",
    benchmark:
        "results/benchmarks/infer/{method}/{dataset}/{frame}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/infer.yaml"
    script:
        "../scripts/infer.py"
