# atomloc: atom-column localisation benchmark for HAADF-STEM image series.
# Run: snakemake --cores 2   (see README.md)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/config.smk"  # the config validated (errors: the key, the value, the rule)
include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/label.smk"
include: "workflow/rules/learn.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/release.smk"
include: "workflow/rules/chemistry.smk"
include: "workflow/rules/ptycho.smk"


localrules:
    all,
    tables,
    figure_detections,
    figures,
    figure_strain,
    figure_series,
    release,
    chemistry_report,
    ptycho_report,


rule all:
    input:
        final_outputs(),
    default_target: True


# The shipped pretrained weights: snakemake --configfile workflow/configs/release.yaml release
rule release:
    input:
        expand("atomloc/models/{model}.{ext}", model=RELEASE_MODELS + RELEASE_RESTORERS, ext=("pt", "json")),
