rule simulate_series:
    output:
        series="results/series/{dataset}.h5",
    params:
        spec=lambda wildcards: simulation_spec(wildcards.dataset),
    log:
        "results/logs/simulate_series/{dataset}.log",
    benchmark:
        "results/benchmarks/simulate_series/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/simulate.yaml"
    script:
        "../scripts/simulate_series.py"
