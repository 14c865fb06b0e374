rule figure_detections:
    input:
        per_image="results/tables/per_image.csv",
        series=expand("results/series/{dataset}.h5", dataset=TEST_DATASETS),
        positions=expand("results/positions/{{method}}/{dataset}.csv", dataset=TEST_DATASETS),
    output:
        png=report(
            "results/figures/detections/{method}.png",
            caption="../report/detections.rst",
            category="Detections",
            labels={"method": "{method}"},
        ),
        pdf="results/figures/detections/{method}.pdf",
    params:
        datasets=TEST_DATASETS,
        splits=dataset_splits(),
    log:
        "results/logs/figure_detections/{method}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figure_detections.py"


rule figures:
    input:
        per_image="results/tables/per_image.csv",
        dose="results/tables/dose.csv",
        scale="results/tables/scale.csv",
        histories=[f"results/models/{m}_history.csv" for m in METHODS if m in LEARNED],
        series=f"results/series/{TEST_DATASETS[0]}.h5",
        aligned=f"results/aligned/{TEST_DATASETS[0]}.h5",
        labels=f"results/labels/{TEST_DATASETS[0]}.csv",
    output:
        **{
            name: report(
                f"results/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Benchmark",
                labels={"figure": name},
            )
            for name in FIGURES
        },
        **{f"{name}_pdf": f"results/figures/{name}.pdf" for name in FIGURES},
    params:
        splits=dataset_splits(),
        dataset=TEST_DATASETS[0],
        transfer=config["align"]["alignment"],
    log:
        "results/logs/figures/figures.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figures.py"


rule figure_strain:
    input:
        series="results/series/{dataset}.h5",
        columns="results/strain/{dataset}_columns.csv",
    output:
        png=report(
            "results/figures/strain/{dataset}.png",
            caption="../report/strain.rst",
            category="Strain",
            labels={"dataset": "{dataset}"},
        ),
        pdf="results/figures/strain/{dataset}.pdf",
    log:
        "results/logs/figure_strain/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figure_strain.py"


rule figure_series:
    input:
        series="results/series/{dataset}.h5",
    output:
        png=report(
            "results/figures/series/{dataset}.png",
            caption="../report/series.rst",
            category="Series",
            labels={"dataset": "{dataset}"},
        ),
        pdf="results/figures/series/{dataset}.pdf",
    log:
        "results/logs/figure_series/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/figure_series.py"
