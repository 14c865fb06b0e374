rule tables:
    input:
        metrics=expand("results/metrics/{method}/{dataset}.csv", method=METHODS, dataset=TEST_DATASETS),
        label_metrics=expand("results/label_metrics/{dataset}.csv", dataset=DATASETS),
    output:
        methods_csv="results/tables/methods.csv",
        methods_md="results/tables/methods.md",
        methods_vs_labels_csv="results/tables/methods_vs_labels.csv",
        methods_vs_labels_md="results/tables/methods_vs_labels.md",
        per_image_csv="results/tables/per_image.csv",
        per_image_md="results/tables/per_image.md",
        labels_csv="results/tables/labels.csv",
        labels_md="results/tables/labels.md",
    params:
        scoring=SCORING,
        skipped=SKIPPED_METHODS,
        transfer=config["align"]["alignment"],
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
