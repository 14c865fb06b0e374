from _common import start_log

import pandas as pd

from atomloc.analysis.provenance import provenance
from atomloc.analysis.tables import (
    compact_markdown,
    conditions_table,
    dose_table,
    markdown_summary,
    read_table_or_empty,
    split_rows,
    summarise,
    write_table,
)

log = start_log(snakemake)  # noqa: F821
out = snakemake.output
scoring = snakemake.params.scoring
splits = dict(snakemake.params.splits)


def write(stem, table, title, notes, markdown=None):
    write_table(out[f"{stem}_csv"], out[f"{stem}_md"], table, title, notes, markdown=markdown)


def summary_table(stem, rows, keys, metrics, title, notes):
    if rows.empty:
        write(stem, rows, title, notes + ["No dataset of this kind in the config."])
        return
    summary = summarise(rows, by=keys, metrics=metrics)
    write(stem, summary, title, notes, markdown=compact_markdown(summary, keys, metrics))
    log.info("%s:\n%s", stem, compact_markdown(summary, keys, metrics).to_string(index=False))


per_image = pd.concat([pd.read_csv(p) for p in snakemake.input.metrics], ignore_index=True)
per_image = per_image.sort_values(["method", "dataset", "frame", "reference"], kind="stable")
match_note = (f"Match radius {scoring['match_radius_frac']} x and border margin {scoring['border_frac']} x the mean "
              "nearest-neighbour spacing of the reference; one-to-one Hungarian matching.")
notes = [match_note,
         "precision = TP / predictions, recall = TP / references (standard definitions); Chamfer distance in px.",
         "Mean ± standard deviation over images; time is the locate() call only, on this machine."]
notes += [f"Not run: {reason}" for reason in snakemake.params.skipped.values()]
crlb_note = ("CRLB: Cramér–Rao bound of the 2-D position of a round Gaussian column in Poisson noise, for the median "
             "amplitude, width and background fitted at the reference positions of that frame (its dose and column "
             "width); RMSE / CRLB = 1 would be an efficient estimator. RMSE is over matched columns only (errors cut at "
             "the match radius; at low dose mostly the bright columns match), so frames with few matches can show "
             "RMSE / CRLB < 1.")
test = per_image[per_image["dataset"].map(splits) == "test"]
for reference, stem in (("truth", "methods"), ("labels", "methods_vs_labels")):
    rows = test[test.reference == reference]
    if rows.empty:
        log.info("no rows scored against %s", reference)
        write(stem, rows, f"Methods scored against the {reference}", notes + [f"No test dataset has {reference}."])
        continue
    summary = summarise(rows, by="method")
    kinds = ", ".join(snakemake.params.scoring.get("truth_kinds") or ["all"])
    title = (f"Methods scored against the simulated truth ({kinds} columns)" if reference == "truth"
             else f"Methods scored against the reference labels (best frame, {snakemake.params.transfer} transfer)")
    write(stem, summary, title, notes, markdown=markdown_summary(summary, by="method"))
    log.info("%s:\n%s", stem, markdown_summary(summary).to_string(index=False))
cols = ["method", "dataset", "frame", "reference", "dose_e_per_A2", "defocus_nm", "in_focus", "fov_nm", "n_pred", "n_ref", "tp", "fp", "fn",
        "precision", "recall", "f1", "jaccard", "chamfer_px", "rmse_pm", "crlb_pm", "rmse_over_crlb", "time_ms"]
write("per_image", per_image[[c for c in cols if c in per_image.columns]], "Per-image scores (every split)",
      notes + ["split of each dataset: " + ", ".join(f"{k}: {v}" for k, v in sorted(splits.items()))])

main = split_rows(per_image, splits, "test")
reference = main["reference"].iloc[0] if len(main) else "truth"
ref_note = f"Scored against the {'simulated truth' if reference == 'truth' else 'reference labels'}."

# Table 1: atomid per test image (the study's Table 1).
t1 = main[main.method == "atomid"][[c for c in cols if c in main.columns and c != "method"]]
write("table1_atomid_per_image", t1, "Table 1: AtomID-net per test image", [ref_note, match_note, crlb_note]
      + ([] if len(t1) else ["atomid is not among the configured methods."]))

# Table 2: methods, the study's columns plus ours.
summary_table("table2_methods", main, ["method"], ["chamfer_px", "jaccard", "f1", "rmse_pm", "crlb_pm",
                                                   "rmse_over_crlb", "time_ms"],
              "Table 2: methods on the test split (mean ± std over images)", [ref_note, match_note, crlb_note])

# Table 3: atomid's detection heads on the same confidence maps.
heads = [pd.read_csv(p) for p in snakemake.input.heads]
nms = main[main.method == "atomid"].assign(method="atomid_nms")
head_rows = pd.concat([nms] + [h[h.reference == reference] for h in heads], ignore_index=True) if heads else nms
summary_table("table3_heads_timing", head_rows.assign(head=head_rows["method"].str.replace("atomid_", "")),
              ["head"], ["chamfer_px", "jaccard", "f1", "time_ms"],
              "Table 3: AtomID-net detection heads on the same confidence maps",
              [ref_note, match_note, "time: network + head per image on this machine's CPU (torch device: auto); "
               "LoG/DoG/DoH are scikit-image blob detectors with max_sigma from the predicted spacing."])

# F1 vs field of view (fixed method parameters).
summary_table("scale", split_rows(per_image, splits, "scale"), ["fov_nm", "method"], ["f1", "rmse_pm"],
              "F1 per method vs field of view (fixed parameters)", [match_note, "fov_nm = frame width."])

# F1 and RMSE per dose decile.
if main.empty or "dose_e_per_A2" not in main:
    write("dose", pd.DataFrame(), "F1 and RMSE per dose decile", ["No test dataset with a known dose."])
else:
    dose = dose_table(main)
    keys = ["dose_decile", "dose_min_e_per_A2", "dose_max_e_per_A2", "method"]
    write("dose", dose, "F1 and RMSE per method per dose decile of the test frames",
          [ref_note, match_note, "Decile 1 = lowest dose; doses in e/Å²."],
          markdown=compact_markdown(dose, keys, ["f1", "rmse_pm", "crlb_pm"]))

# F1 per imaging condition: focus x dose.
conditions = conditions_table(main)
condition_notes = [ref_note, match_note,
                   "within depth of field: |defocus| <= 0.885 lambda / alpha^2 (half of the probe's 1.77 lambda / "
                   "alpha^2); beyond it the probe's side lobes move the image peaks off the columns, even without "
                   "noise (results/figures/series/)."]
if conditions.empty:
    write("conditions", conditions, "F1 per imaging condition", condition_notes + ["No test frame with a known "
                                                                                   "defocus and dose."])
else:
    keys = ["focus", "dose", "method"]
    write("conditions", conditions, "F1 per method per imaging condition (focus x dose) of the test frames",
          condition_notes, markdown=compact_markdown(conditions, keys, ["f1", "precision", "recall", "rmse_pm"]))

summary_table("failure", split_rows(per_image, splits, "failure"), ["dataset", "method"],
              ["f1", "precision", "recall", "jaccard", "rmse_pm"],
              "Failure cases (bilayer, aperiodic single atoms and clusters)", [match_note])

summary_table("lattice_precision", main, ["dataset", "method"], ["lattice_a_std_pm", "lattice_b_std_pm"],
              "Lattice-parameter precision: standard deviation of the measured |a| and |b| over one image (pm)",
              ["Every detected column with a neighbour at +a (+b) of the unstrained lattice gives one length; "
               "mean ± std of the per-image standard deviations. Includes scan distortion and defocus effects."])

strain = pd.concat([pd.read_csv(p) for p in snakemake.input.strain], ignore_index=True) if snakemake.input.strain \
    else pd.DataFrame()
strain_notes = ["Strain from positions: least-squares deformation gradient from the ±a, ±b neighbours against the "
                "specimen's unstrained lattice; gpa: own geometric phase analysis on the image, sampled at the true "
                "columns; truth: the true positions, whose error floor is the scan distortion they follow.",
                "RMS errors against the applied strain field; hydrostatic = (exx + eyy) / 2."]
if strain.empty:
    write("strain", strain, "Strain maps vs the applied strain", strain_notes + ["No strain-split dataset."])
else:
    md = strain[["dataset", "strain_field", "method", "n_columns"]].copy()
    for k in ("exx", "eyy", "exy", "hydrostatic"):
        md[f"RMS error {k}"] = strain[f"rms_error_{k}"].map(lambda v: f"{v:.4f}")
    md["hydrostatic mean ± std"] = [f"{a:+.4f} ± {b:.4f}" for a, b in zip(strain.hydrostatic_mean,
                                                                           strain.hydrostatic_std)]
    md["true hydrostatic mean"] = strain["true_hydrostatic_mean"].map(lambda v: f"{v:+.4f}")
    write("strain", strain, "Strain maps vs the applied strain, per method and GPA", strain_notes, markdown=md)

labels = pd.concat([read_table_or_empty(p) for p in snakemake.input.label_metrics], ignore_index=True)
if not labels.empty:
    summary = summarise(labels, by=["dataset", "labels"])
    write("labels", summary, "Reference labels scored against the simulated truth, per dataset", [match_note,
          "reference_frame: the best frame's own labels; rigid_transfer / nonrigid_transfer: those "
          "labels carried to the other frames by the rigid drift / by drift + row-wise slow-scan shifts."],
          markdown=markdown_summary(summary, by=["dataset", "labels"]))
else:
    write("labels", labels, "Reference labels scored against the simulated truth", ["No dataset carries truth."])

write("provenance", provenance(devices={"learned_spread_f1": snakemake.params.learned_spread_f1}),
      "Provenance: what these tables were computed with",
      ["Same config on the same machine gives the same bytes (timing columns aside). Across machines the "
       "trained models' results move: learned_spread_f1 is the run-to-run spread of a trained model's F1 across "
       "training seeds (benchmarks/seed_spread.py), and the decision map calls a trained method's lead within it a "
       "tie."])
