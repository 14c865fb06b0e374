rule simulate_series:
    output:
        series="results/series/{dataset}.h5",
    params:
        spec=lambda wildcards: simulation_spec(wildcards.dataset),
    wildcard_constraints:
        dataset=_names_regex(SIMULATED),
    priority: train_chain_priority
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


# Real series: microscope files under resources/ (source: files), read through rosettasciio.
rule import_series:
    input:
        files=lambda wildcards: series_files(wildcards.dataset),
    output:
        series="results/series/{dataset}.h5",
    params:
        pixel_size_pm=lambda wildcards: dataset_entry(wildcards.dataset).get("pixel_size_override_pm") or None,
    wildcard_constraints:
        dataset=_names_regex(IMPORTED),
    log:
        "results/logs/import_series/{dataset}.log",
    benchmark:
        "results/benchmarks/import_series/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/simulate.yaml"
    script:
        "../scripts/import_series.py"
