rule tables:
    input:
        metrics=expand("results/metrics/{method}.csv", method=METHODS),
        label_metrics=expand("results/label_metrics/{dataset}.csv", dataset=DATASETS),
        heads=heads_metrics,
        strain=expand("results/strain/{dataset}.csv", dataset=STRAIN_DATASETS),
    output:
        **{
            f"{stem}_csv": report(
                f"results/tables/{stem}.csv",
                caption="../report/tables.rst",
                category="Tables",
                labels={"table": stem},
            )
            for stem in TABLES
        },
        **{f"{stem}_md": f"results/tables/{stem}.md" for stem in TABLES},
    params:
        scoring=SCORING,
        skipped=SKIPPED_METHODS,
        transfer=config["align"]["alignment"],
        splits=dataset_splits(),
        learned_spread_f1=config["sweep_report"]["learned_spread_f1"],
    log:
        "results/logs/tables/tables.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/tables.py"
