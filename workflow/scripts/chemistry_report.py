from _common import start_log

import numpy as np
import pandas as pd

from atomloc.analysis.chemistry import dose_reduction, ratio_table, summary_table
from atomloc.analysis.sweeps import interval_text
from atomloc.analysis.tables import write_table
from atomloc.io.multimodal import read_fields
from atomloc.plotting import plot_image_grid

log = start_log(snakemake)  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params


def read(key):
    return pd.concat([pd.read_csv(path).assign(dataset=d) for path, d in zip(inp[key], p.datasets)],
                     ignore_index=True)


quality, columns, tuning, seconds = read("quality"), read("columns"), read("tuning"), read("seconds")
tables = iter(out.tables)

# 1. Map quality per element, count level and method, with fused / reference NRMSE ratios.
maps = summary_table(quality, by=["dataset", "element", "counts_per_pixel", "method"],
                     metrics=["nrmse", "psnr_db", "ssim"], n_boot=p.n_boot, seed=p.seed)
ratios = ratio_table(quality)
if "column" in set(quality["method"]):
    column = ratio_table(quality, method="column", references=("raw", "blur", "fused", "peer"))
    keys = ["dataset", "element", "counts_per_pixel"]
    ratios = ratios.merge(column[keys + [c for c in column if c.startswith("column/")]], on=keys)
maps = maps.merge(ratios[[c for c in ratios if "/" in c or c in ("dataset", "element", "counts_per_pixel")]],
                  on=["dataset", "element", "counts_per_pixel"], how="left")
md = maps[["dataset", "element", "counts_per_pixel", "method", "n_fields"]].copy()
for m, d in (("nrmse", 3), ("psnr_db", 1), ("ssim", 3)):
    md[m] = [interval_text(a, b, c, d) for a, b, c in zip(maps[f"{m}_mean"], maps[f"{m}_lo"], maps[f"{m}_hi"])]
for c in [c for c in maps if "/" in c]:
    md[c] = maps[c].map(lambda v: f"{v:.2f}")
sec = seconds.groupby(["dataset", "method"])["seconds"].mean().rename("s_per_field").reset_index()
md = md.merge(sec, on=["dataset", "method"], how="left")


def fusion_text(r):
    failed = int(getattr(r, "fused_failed", 0))
    if not np.isfinite(r.lambda_edx):
        return "fusion: no HAADF scale on the train fields, left out"
    return f"λ_edx {r.lambda_edx:g}, λ_tv {r.lambda_tv:g}" + (
        f" (no HAADF scale on {failed} test field{'s' if failed > 1 else ''}, left out)" if failed else "")


tune = "; ".join(f"{r.dataset} {r.counts_per_pixel:g}: blur {r.blur_sigma_px:g} px, {fusion_text(r)}"
                 + (f", peer {r.peer_lambda_edx:g} / {r.peer_lambda_tv:g}" if "peer_lambda_edx" in tuning else "")
                 + (f", column {r.column_sigma_px:g} px" if "column_sigma_px" in tuning else "")
                 for r in tuning.itertuples())
write_table(next(tables), next(tables), maps, "Elemental maps: scale-invariant NRMSE, PSNR and SSIM against the truth",
            ["Test fields per count level (mean [95 % bootstrap interval]); counts_per_pixel: mean EDX counts per "
             "pixel of one atom per site of the first cation; truth: the noise-free EDX map without background.",
             "raw: the counts; blur: Gaussian blur, sigma tuned on the train fields; fused: atomloc's fusion "
             "(HAADF + EDX, λ's tuned on the train fields; left out of a field where the EDX counts are too few to "
             "fit the HAADF's scale to them); column: atomloc's column model (one Gaussian per column "
             "located on the HAADF plus the columns only the EDX maps show, Poisson ML-EM amplitudes drawn toward "
             "the mean of their composition; the width tuned on the train fields); peer: the authors' "
             "multimodal-fusion, its lambdaEDS and lambdaTV tuned on the train fields (its other settings its "
             "defaults).",
             f"Tuned: {tune}."], markdown=md)

# 2. Column classification per method, with and without each column's HAADF signal.
cols = summary_table(columns, by=["dataset", "channels", "counts_per_pixel", "method"],
                     metrics=["accuracy", "dopant_f1", "vacancy_f1", "located_recall"], n_boot=p.n_boot, seed=p.seed)
md = cols[["dataset", "channels", "counts_per_pixel", "method", "n_fields"]].copy()
for m in ("accuracy", "dopant_f1", "vacancy_f1", "located_recall"):
    md[m] = [interval_text(a, b, c, 3) for a, b, c in zip(cols[f"{m}_mean"], cols[f"{m}_lo"], cols[f"{m}_hi"])]
write_table(next(tables), next(tables), cols, "Column chemistry: classification accuracy, dopant F1, vacancy F1",
            ["Columns located on the HAADF and matched to the truth (0.3 x spacing); each classified as the "
             "candidate composition (pristine site, dopant on the host's site, one atom fewer) of the highest "
             "likelihood (each channel Gaussian, the EDX channels' variance growing with the expected signal). "
             "channels maps: the elemental maps' column sums alone; maps+HAADF: with the column's HAADF sum."],
            markdown=md)

# 3. Dose-reduction factor: counts to reach the target accuracy by raw / blur EDX maps alone, over those of
#    every other route (fused maps; any maps with the columns' HAADF signal).
rows = []
routes = sorted(set(columns["route"]))
for ref in ("raw", "blur"):
    for route in routes:
        if route != ref:
            rows.append(dose_reduction(columns, method=route, reference=ref, target=p.target, by=["dataset"],
                                       n_boot=p.n_boot, seed=p.seed))
dr = pd.concat(rows, ignore_index=True)
md = dr[["dataset", "reference", "method"]].copy()
fmt = (lambda v: "not reached" if not np.isfinite(v) else f"{v:.3g}")
md["counts (reference)"] = dr["counts_reference"].map(fmt)
md["counts (method)"] = [("≤ " if lb else "") + fmt(v) for v, lb in zip(dr["counts_method"], dr["lower_bound"])]
md["factor"] = ["n/a (the method does not reach it)" if not np.isfinite(m) else ("≥ " if lb else "")
                + interval_text(a, b, c, 2)
                for a, b, c, lb, m in zip(dr["factor"], dr["lo"], dr["hi"], dr["lower_bound"], dr["counts_method"])]
write_table(next(tables), next(tables), dr, f"Dose-reduction factor at {p.target:.0%} column-classification accuracy",
            ["Counts per pixel at which the mean accuracy first reaches the target (log-linear between levels) by "
             "the reference (EDX maps alone), divided by those of the method; interval: the fields of each level "
             "resampled. method X+HAADF: X's column sums with each column's HAADF sum. ≤ / ≥: reached at the "
             "lowest level run (a bound); 'not reached': not within the levels run."], markdown=md)

# 4. The maps figure: per dataset and element, HAADF | every method's map | truth.
grid = []
for path, d in zip(inp.examples, p.datasets):
    fields = read_fields(path)
    levels = sorted(float(k.split("_")[1]) for k in fields if not k.endswith("_maps"))
    level = min(levels, key=lambda c: abs(np.log(c / p.figure_counts)))
    fld, mp = fields[f"counts_{level:g}"], fields[f"counts_{level:g}_maps"]
    methods = mp["attrs"]["methods"].split(",")
    for k, e in enumerate(fld["elements"]):
        row = [{"image": fld["haadf"], "title": f"{d} HAADF"} if k == 0 else None]
        row += [{"image": mp["edx"][j][k], "title": f"{e} {m} ({level:g} c/px)"} for j, m in enumerate(methods)]
        row.append({"image": fld["edx_truth"][k], "title": f"{e} truth"})
        grid.append(row)
plot_image_grid(grid, [out.figure, out.figure_pdf], suptitle="Elemental maps: " + ", ".join(methods) + ", truth")
log.info("chemistry report: %d datasets", len(p.datasets))
