rule figure_detections:
    input:
        series=lambda wildcards: f"results/series/{figure_dataset()}.h5",
        positions=lambda wildcards: f"results/positions/{wildcards.method}/{figure_dataset()}.csv",
    output:
        figure=report(
            "results/figures/detections/{method}.png",
            caption="../report/detections.rst",
            category="Detections",
            labels={"method": "{method}"},
        ),
    params:
        dataset=figure_dataset(),
        frame=figure_frame(),
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
