# Controlled sweeps (the sweeps: block): every method on every frame of the sweep datasets, scored
# against the truth; then the curves with intervals, "dose to detect", efficiency vs the bound and the
# decision map.  One job per method over all sweep datasets (job start-up costs more than a 128 px frame).


rule sweep_crlb:
    input:
        series=expand("results/series/{dataset}.h5", dataset=SWEEP_DATASETS),
    output:
        crlb="results/sweeps/crlb.csv",
        frame_crlb="results/sweeps/frame_crlb.csv",
    params:
        datasets=SWEEP_DATASETS,
        scoring=sweep_scoring(),
    log:
        "results/logs/sweeps/crlb.log",
    benchmark:
        "results/benchmarks/sweeps/crlb.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/sweep_crlb.py"


rule sweep_locate:
    input:
        series=expand("results/series/{dataset}.h5", dataset=SWEEP_DATASETS),
        crlb="results/sweeps/crlb.csv",
        frame_crlb="results/sweeps/frame_crlb.csv",
        weights=lambda wildcards: restorer_weights([wildcards.method]),
    output:
        metrics="results/sweeps/metrics/{method}.csv",
        positions=directory("results/sweeps/positions/{method}"),
    params:
        method=lambda wildcards: wildcards.method,
        params=method_params,
        datasets=SWEEP_DATASETS,
        scoring=sweep_scoring(),
    # a restoration before locating (BM3D: 5 CPU-minutes here) makes these the longest sweep jobs
    # (the rules made from this one with a fixed method have no method wildcard)
    priority: lambda wildcards: PRIORITY_LONG_JOB if getattr(wildcards, "method", None) in RESTORE_LOCATE else 0
    log:
        "results/logs/sweeps/{method}.log",
    benchmark:
        "results/benchmarks/sweeps/{method}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/infer.yaml"
    script:
        "../scripts/sweep_locate.py"


use rule sweep_locate as sweep_locate_atomap with:
    input:
        series=expand("results/series/{dataset}.h5", dataset=SWEEP_DATASETS),
        crlb="results/sweeps/crlb.csv",
        frame_crlb="results/sweeps/frame_crlb.csv",
    output:
        metrics="results/sweeps/metrics/atomap.csv",
        positions=directory("results/sweeps/positions/atomap"),
    params:
        method="atomap",
        params=lambda wildcards: dict(config["methods"]["atomap"]),
        datasets=SWEEP_DATASETS,
        scoring=sweep_scoring(),
    log:
        "results/logs/sweeps/atomap.log",
    benchmark:
        "results/benchmarks/sweeps/atomap.tsv"
    resources:
        mem_mb=3000,
        runtime=120,
    conda:
        "../../envs/atomap.yaml"


use rule sweep_locate as sweep_locate_learned with:
    input:
        series=expand("results/series/{dataset}.h5", dataset=SWEEP_DATASETS),
        crlb="results/sweeps/crlb.csv",
        frame_crlb="results/sweeps/frame_crlb.csv",
        weights=lambda wildcards: restorer_weights([wildcards.method]),
        model=lambda wildcards: f"results/models/{split_method(wildcards.method)[0]}.pt",
    params:
        method=lambda wildcards: wildcards.method,
        params=lambda wildcards, input: {**method_params(wildcards), "model": input.model},
        datasets=SWEEP_DATASETS,
        scoring=sweep_scoring(),
    wildcard_constraints:
        method=f"({'|'.join(LEARNED)})(@[A-Za-z0-9_+]+)?",
    resources:
        mem_mb=3000,
        runtime=60,
    conda:
        "../../envs/learn.yaml"


ruleorder: sweep_locate_atomap > sweep_locate_learned > sweep_locate


rule sweep_report:
    input:
        metrics=expand("results/sweeps/metrics/{method}.csv", method=SWEEP_METHODS),
    output:
        **{
            f"{stem}_csv": report(
                f"results/tables/{stem}.csv",
                caption="../report/sweep_tables.rst",
                category="Sweeps",
                labels={"table": stem},
            )
            for stem in SWEEP_TABLES
        },
        **{f"{stem}_md": f"results/tables/{stem}.md" for stem in SWEEP_TABLES},
        **{
            name: report(
                f"results/figures/sweeps/{name}.png",
                caption=f"../report/sweep_{name}.rst",
                category="Sweeps",
                labels={"figure": name},
            )
            for name in SWEEP_FIGURES
        },
        **{f"{name}_pdf": f"results/figures/sweeps/{name}.pdf" for name in SWEEP_FIGURES},
    params:
        frames=sweep_frames(),
        sweeps=[{"name": s.name, "material": s.material, "reference_dose_e_per_A2": s.reference_dose_e_per_A2,
                 "truth_kinds": list(s.truth_kinds) or SCORING["truth_kinds"]} for s in SWEEPS],
        report=config["sweep_report"],
        learned=sorted(set(SWEEP_METHODS) & set(LEARNED)),
        scoring=SCORING,
        skipped=SKIPPED_METHODS,
        left_out=sorted(set(METHODS) - set(SWEEP_METHODS)),
        restored=RESTORE_LOCATE,
    log:
        "results/logs/sweeps/report.log",
    benchmark:
        "results/benchmarks/sweeps/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/figures.yaml"
    script:
        "../scripts/sweep_report.py"


# Restoration quality (PSNR / SSIM against the noise-free truth) on the in-focus frames of each sweep's
# nominal pixel size: the frames are simulated again with their expected images (and must equal the
# stored ones), every restoration of restoration.quality runs on them; and one figure of
# image -> restored -> detections.
rule restoration_quality:
    input:
        series=expand("results/series/{dataset}.h5", dataset=SWEEP_DATASETS),
        weights=restorer_weights(RESTORE_QUALITY + [f"{RESTORATION['figure_method']}@{c}" for c in RESTORE_QUALITY]),
    output:
        csv=report("results/tables/restoration_quality.csv", caption="../report/restoration_quality.rst",
                   category="Sweeps", labels={"table": "restoration_quality"}),
        md="results/tables/restoration_quality.md",
        figure=report("results/figures/sweeps/restoration_examples.png",
                      caption="../report/restoration_examples.rst", category="Sweeps",
                      labels={"figure": "restoration_examples"}),
        figure_pdf="results/figures/sweeps/restoration_examples.pdf",
    params:
        datasets=SWEEP_DATASETS,
        specs=[simulation_spec(d) for d in SWEEP_DATASETS],
        frames=sweep_frames(),
        truth_kinds=[truth_kinds(d) for d in SWEEP_DATASETS],
        restorations=RESTORE_QUALITY,
        figure={"dose_e_per_A2": RESTORATION["figure_dose_e_per_A2"], "method": RESTORATION["figure_method"]},
        n_boot=config["sweep_report"]["n_boot"],
        seed=config["sweep_report"]["seed"],
    priority: PRIORITY_LONG_JOB
    log:
        "results/logs/sweeps/restoration_quality.log",
    benchmark:
        "results/benchmarks/sweeps/restoration_quality.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        "../../envs/infer.yaml"
    script:
        "../scripts/restoration_quality.py"
