rule infer:
    input:
        series="results/series/{dataset}.h5",
    output:
        positions="results/positions/{method}/{dataset}.csv",
        timing="results/positions/{method}/{dataset}.json",
    params:
        method=lambda wildcards: wildcards.method,
        params=method_params,
    log:
        "results/logs/infer/{method}/{dataset}.log",
    benchmark:
        "results/benchmarks/infer/{method}/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/infer.yaml"
    script:
        "../scripts/infer.py"


# Atomap pulls in HyperSpy and numba: its own conda env, and more time per frame.
rule infer_atomap:
    input:
        series="results/series/{dataset}.h5",
    output:
        positions="results/positions/atomap/{dataset}.csv",
        timing="results/positions/atomap/{dataset}.json",
    params:
        method="atomap",
        params=lambda wildcards: dict(config["methods"]["atomap"]),
    log:
        "results/logs/infer/atomap/{dataset}.log",
    benchmark:
        "results/benchmarks/infer/atomap/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    conda:
        "../../envs/atomap.yaml"
    script:
        "../scripts/infer.py"


ruleorder: infer_atomap > infer
