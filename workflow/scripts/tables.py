from _common import start_log

import pandas as pd

from atomloc.tables import markdown_summary, summarise, write_table

log = start_log(snakemake)  # noqa: F821
scoring = snakemake.params.scoring
per_image = pd.concat([pd.read_csv(p) for p in snakemake.input.metrics], ignore_index=True)
per_image = per_image.sort_values(["method", "dataset", "frame", "reference"], kind="stable")
notes = [f"Match radius {scoring['match_radius_frac']} x and border margin {scoring['border_frac']} x the mean "
         "nearest-neighbour spacing of the reference; one-to-one Hungarian matching.",
         "precision = TP / predictions, recall = TP / references (standard definitions); Chamfer distance in px.",
         "Mean ± standard deviation over images; time is the locate() call only, on this machine."]
notes += [f"Not run: {reason}" for reason in snakemake.params.skipped.values()]
for reference, stem in (("truth", "methods"), ("labels", "methods_vs_labels")):
    rows = per_image[per_image.reference == reference]
    if rows.empty:
        log.info("no rows scored against %s", reference)
        write_table(snakemake.output[f"{stem}_csv"], snakemake.output[f"{stem}_md"], rows,
                    f"Methods scored against the {reference}", notes + [f"No test dataset has {reference}."])
        continue
    summary = summarise(rows, by="method")
    title = ("Methods scored against the simulated truth" if reference == "truth"
             else f"Methods scored against the reference labels (best frame, {snakemake.params.transfer} transfer)")
    write_table(snakemake.output[f"{stem}_csv"], snakemake.output[f"{stem}_md"], summary, title, notes,
                markdown=markdown_summary(summary, by="method"))
    log.info("%s:\n%s", stem, markdown_summary(summary).to_string(index=False))
cols = ["method", "dataset", "frame", "reference", "dose_e_per_A2", "n_pred", "n_ref", "tp", "fp", "fn",
        "precision", "recall", "f1", "jaccard", "chamfer_px", "rmse_pm", "time_ms"]
per_image = per_image[[c for c in cols if c in per_image.columns]]
write_table(snakemake.output.per_image_csv, snakemake.output.per_image_md, per_image, "Per-image scores", notes)
def _read_or_empty(path):
    """A label-metrics CSV; a dataset without truth writes an empty one."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


labels = pd.concat([_read_or_empty(p) for p in snakemake.input.label_metrics], ignore_index=True)
if not labels.empty:
    summary = summarise(labels, by=["dataset", "labels"])
    write_table(snakemake.output.labels_csv, snakemake.output.labels_md, summary,
                "Reference labels scored against the simulated truth, per dataset", notes[:1] + [
                    "reference_frame: the best frame's own labels; rigid_transfer / nonrigid_transfer: those "
                    "labels carried to the other frames by the rigid drift / by drift + row-wise slow-scan shifts."],
                markdown=markdown_summary(summary, by=["dataset", "labels"]))
else:
    write_table(snakemake.output.labels_csv, snakemake.output.labels_md, labels,
                "Reference labels scored against the simulated truth", ["No dataset carries truth."])
