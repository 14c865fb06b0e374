from _common import start_log

import numpy as np
import pandas as pd

from atomloc.analysis.restoration import restoration_effect
from atomloc.analysis.sweeps import interval_text, sweep_rows, sweep_tables
from atomloc.analysis.tables import write_table
from atomloc.plotting import method_colors, plot_decision_map, plot_sweep_curves

log = start_log(snakemake)  # noqa: F821
out = snakemake.output
settings = snakemake.params.report
sweeps = snakemake.params.sweeps
learned = list(snakemake.params.learned)
scoring = snakemake.params.scoring

metrics = pd.concat([pd.read_csv(p) for p in snakemake.input.metrics], ignore_index=True)
rows = sweep_rows(metrics, pd.DataFrame(snakemake.params.frames), match_radius_frac=scoring["match_radius_frac"])
tables = sweep_tables(rows, reference_doses={s["material"]: s["reference_dose_e_per_A2"] for s in sweeps},
                      learned=learned, learned_spread_f1=settings["learned_spread_f1"],
                      f1_target=settings["f1_target"], n_boot=settings["n_boot"], seed=settings["seed"])
colors = method_colors(sorted(rows["method"].unique()))
kinds = "; ".join(f"{s['material']}: {', '.join(s['truth_kinds'])}" for s in sweeps)
seeds = rows.groupby(["dataset", "method"])["frame"].nunique()
common = [f"Scored against the simulated truth ({kinds} columns; other columns are neither hits nor false alarms); "
          f"match radius {scoring['match_radius_frac']} x the column spacing.",
          f"Intervals: {100 * 0.95:.0f} % percentile bootstrap ({settings['n_boot']} resamples, seed "
          f"{settings['seed']}) over the independent frames (seeds) of each grid point."]
common += [f"Not run: {reason}" for reason in snakemake.params.skipped.values()]
if snakemake.params.left_out:
    common.append(f"Not run on the sweeps (sweep_report.methods): {', '.join(snakemake.params.left_out)}.")


def write(stem, table, title, notes, markdown=None):
    write_table(out[f"{stem}_csv"], out[f"{stem}_md"], table, title, notes, markdown=markdown)


def paths(name):
    return [out[name], out[f"{name}_pdf"]]


# Curves: F1, precision, recall, RMSE vs dose (in focus), defocus and spacing (at the reference dose).
curves = tables["curves"]
md = curves[["axis", "material", "method", "x", "n_images"]].copy()
for m, dec in (("f1", 3), ("precision", 3), ("recall", 3), ("rmse_pm", 2)):
    md[m] = [interval_text(a, b, c, dec) for a, b, c in zip(curves[f"{m}_mean"], curves[f"{m}_lo"],
                                                            curves[f"{m}_hi"])]
ref = ", ".join(f"{s['material']} {s['reference_dose_e_per_A2']:g}" for s in sweeps)
write("sweep_curves", curves, "Sweep curves: F1, precision, recall and RMSE (pm) per grid value, mean [95 % interval]",
      common + ["axis dose: x = dose (e/Å²), in focus, nominal pixel size; axis defocus: x = defocus (nm) at the "
                f"reference dose ({ref} e/Å²); axis spacing: x = column spacing (px, from the pixel size) in focus "
                "at the reference dose."], markdown=md)
for axis, x, label, logx in (("dose", "dose_e_per_A2", "dose (e/Å²)", True),
                             ("defocus", "defocus_nm", "defocus (nm, in focus = 0)", False),
                             ("spacing", "spacing_px", "column spacing (px)", True)):
    curve = curves[curves["axis"] == axis].rename(columns={"x": x})
    plot_sweep_curves(curve, paths(f"f1_vs_{axis}"), x=x, metric="f1", xlabel=label, ylabel="F1", logx=logx,
                      title=f"F1 vs {axis} (bands: 95 % bootstrap intervals; dashed: F1 = 0.95)", colors=colors)

# Dose to detect.
detect = tables["dose_to_detect"]
write("sweep_dose_to_detect", detect,
      f"Dose to detect: the lowest dose (e/Å²) at which the mean F1 reaches {settings['f1_target']}, in focus",
      common + ["Log-linear interpolation between the two grid doses around the first crossing; the interval "
                "recomputes it on bootstrap resamples (∞: some resamples never reach it). ≤: reached at the lowest "
                "dose of the sweep."],
      markdown=detect[["material", "method", "text"]].rename(columns={"text": "dose to detect (e/Å²) [95 % interval]"}))

# Efficiency against the Cramér–Rao bound over the same columns.
eff = tables["efficiency"]
md = eff[["scope", "material", "method", "dose_e_per_A2", "n_images"]].copy()
md["RMSE / CRLB"] = [interval_text(a, b, c, 2) for a, b, c in zip(eff.ratio_mean, eff.ratio_lo, eff.ratio_hi)]
pooled = eff[eff["scope"] != "per dose"].dropna(subset=["ratio_mean"])
best = pooled.loc[pooled.groupby("material")["ratio_mean"].idxmin()] if len(pooled) else pooled
best_notes = [f"Most efficient at {r.scope} e/Å² on {r.material}: {r.method}, RMSE / CRLB "
              f"{interval_text(r.ratio_mean, r.ratio_lo, r.ratio_hi, 2)}." for r in best.itertuples()]
write("sweep_efficiency", eff, "Efficiency: RMSE / Cramér–Rao bound over the same columns, in focus",
      common + ["Per frame, RMSE of the matched columns over the RMS of the bound of those same columns (each "
                "column's bound from its own fitted amplitude, width and background); 1 = an efficient estimator. "
                "Pooled rows: every in-focus frame at or above that dose."] + best_notes, markdown=md)
plot_sweep_curves(eff[eff["scope"] == "per dose"],
                  paths("rmse_over_crlb_vs_dose"), x="dose_e_per_A2", metric="ratio", xlabel="dose (e/Å²)",
                  ylabel="RMSE / CRLB (same columns)", logx=True,
                  title="Efficiency vs dose, in focus (1 = at the Cramér–Rao bound)", colors=colors)

# Decision map.
decision = tables["decision_map"]
md = decision[["axis", "material", "dose_e_per_A2", "y", "n_images"]].copy()
md["best"] = np.where(decision["tie"], "tie: " + decision["best"] + " / " + decision["runner_up"], decision["best"])
md["best"] = np.where(decision["tie"] & (decision["n_at_best"] > 2),
                      "tie: " + decision["n_at_best"].astype(str) + " methods", md["best"])
md["best"] = np.where(decision["usable"], md["best"], f"none reaches {settings['f1_target']} (best: " + md["best"] + ")")
md["F1 of best"] = decision["best_mean"].map(lambda v: f"{v:.3f}")
md["margin [95 % interval]"] = [interval_text(a, b, c, 3) for a, b, c in zip(decision.margin, decision.margin_lo,
                                                                              decision.margin_hi)]
spread = settings["learned_spread_f1"]
write("decision_map", decision, "Decision map: the best method per (dose x defocus) and (dose x spacing) cell",
      common + ["axis defocus: y = defocus (nm) at the nominal pixel size; axis spacing: y = column spacing (px) in "
                "focus.", "best: highest mean F1 over the cell's frames; margin: its lead over the runner-up with the "
                "paired bootstrap interval (same frames for both). none reaches: no method's mean F1 reaches "
                f"{settings['f1_target']} in that cell (trust none). tie: the interval includes 0"
                + (f", or a trained method's lead is not larger than the training-seed spread {spread:g}" if learned
                   else "") + "."], markdown=md)
for axis, y, label in (("defocus", "defocus_nm", "defocus (nm)"), ("spacing", "spacing_px", "column spacing (px)")):
    plot_decision_map(decision[decision["axis"] == axis].rename(columns={"y": y}), paths(f"decision_map_{axis}"),
                      x="dose_e_per_A2", y=y, xlabel="dose (e/Å²)", ylabel=label,
                      title=f"Best method per cell (dose x {axis}); hatched: tie within the 95 % interval",
                      colors=colors)

# The controlled-sweep check: classical F1 must not fall with dose beyond the intervals.
mono = tables["monotone"]
write("sweep_monotone", mono, "Check: F1 vs dose of the untrained methods is monotone within its intervals",
      common + ["Rows: consecutive doses where the F1 interval at the higher dose lies wholly below the one at the "
                "lower dose." + (" None: the sweep is controlled." if mono.empty else "")])
log.info("decision map:\n%s", md.to_string(index=False))
log.info("dose to detect:\n%s", detect[["material", "method", "text"]].to_string(index=False))
log.info("monotone violations: %d", len(mono))

# Restore-then-locate: each method@restoration against its plain method on the same in-focus frames.
dose_rows = rows[(rows["defocus_nm"] == 0.0) & rows["nominal_pixel"].astype(bool)]
effect = restoration_effect(dose_rows, n_boot=settings["n_boot"], seed=settings["seed"])
restored = list(snakemake.params.restored)
if len(effect):
    md = effect[["method", "material", "dose_e_per_A2", "n_images"]].copy()
    md["ΔF1 [95 %]"] = [interval_text(a, b, c, 3) for a, b, c in zip(effect.d_f1_mean, effect.d_f1_lo, effect.d_f1_hi)]
    md["F1 helps"] = effect["helps_f1"]
    md["ΔRMSE pm [95 %]"] = [interval_text(a, b, c, 2) for a, b, c in zip(effect.d_rmse_pm_mean, effect.d_rmse_pm_lo,
                                                                          effect.d_rmse_pm_hi)]
    md["RMSE helps"] = effect["helps_rmse_pm"]
    helps = effect[(effect["helps_f1"] == "yes") | (effect["helps_rmse_pm"] == "yes")]
    hurts = effect[(effect["helps_f1"] == "no") | (effect["helps_rmse_pm"] == "no")]
    verdict = [f"Restoration helps (interval excludes 0) in {len(helps)} of {len(effect)} (method, material, dose) "
               f"cells and hurts in {len(hurts)}."]
else:
    md, verdict = None, ["No restore-then-locate method ran (restoration.locate is empty or not installed)."]
write("restore_then_locate", effect, "Restore-then-locate: what restoring first changes, in focus, paired by frame",
      common + ["ΔF1 = F1(method@restoration) - F1(method) on the same frames (> 0: restoring helps); ΔRMSE (pm, "
                "< 0: helps); helps: yes / no where the paired bootstrap interval excludes 0, else tie. Detections on "
                "the restored image are kept where the raw image backs them; the learned restorations are the "
                "shipped weights.", f"Methods: {', '.join(restored) or 'none'}."] + verdict, markdown=md)
if len(effect):
    log.info("restore-then-locate:\n%s", md.to_string(index=False))
