from _common import start_log

import numpy as np
import pandas as pd

from atomloc.analysis.ptycho import MODALITIES, acceptance_lines, ptycho_tables
from atomloc.analysis.sweeps import interval_text
from atomloc.analysis.tables import write_table
from atomloc.plotting import save_figure

log = start_log(snakemake)  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params
rows = pd.concat([pd.read_csv(path) for path in inp.rows], ignore_index=True)
summary, dose = ptycho_tables(rows, target=p.target, n_boot=p.n_boot, seed=p.seed)
tables = iter(out.tables)

# 1. Every modality x locator x dose: F1, heavy / light recall, RMSE (mean [95 % interval] over the noise draws).
md = summary[["material", "modality", "method", "dose_e_per_A2", "n_seeds"]].copy()
for m, d in (("f1", 3), ("recall_heavy", 3), ("recall_light", 3), ("rmse_pm", 1)):
    md[m] = [interval_text(a, b, c, d) for a, b, c in zip(summary[f"{m}_mean"], summary[f"{m}_lo"], summary[f"{m}_hi"])]
md["s / image"] = summary["time_image_s_mean"].map(lambda v: f"{v:.2f}")
acc = acceptance_lines(summary, target=p.target)


def check_text(r) -> str:
    light = f"at {r.doses} e/Å²" if r.light else "at no dose run"
    rmse = "holds" if r.rmse else "does not hold"
    return (f"{r.material} {r.method}: light-column recall ≥ {p.target:g} on the phase where vADF and HAADF are "
            f"≤ 0.8 {light}; phase RMSE ≤ 0.5 × vADF's at 1e4 e/Å² {rmse} ({r.phase_rmse_pm:.1f} vs "
            f"{r.vadf_rmse_pm:.1f} pm)")


checks = "; ".join(check_text(r) for r in acc.itertuples())
write_table(next(tables), next(tables), summary, "Ptychography, virtual images and HAADF: columns found per dose",
            ["One abTEM 4D-STEM scan per material (noise-free, then Poisson at each dose; mean [95 % bootstrap "
             "interval] over the noise draws). phase: the single-slice reconstruction on the scan grid; vADF, iCoM: "
             "virtual images of the same counts; HAADF: the linear-model frame of the material at the scan's pixel "
             "size and dose.", "F1 at 0.3 x the column spacing; recall_heavy / recall_light: the heavy and the light "
             "(all-light-element, e.g. S2) columns, the other kind don't care; rmse_pm: matched positions; "
             "s / image: seconds to make the image (the reconstruction, the virtual detectors, the simulated frame).",
             f"Issue #20 checks: {checks}."], markdown=md)

# 2. The dose at which the light columns are found.
md = dose[["material", "modality", "method"]].copy()
md["dose (e/Å²)"] = dose["text"]
write_table(next(tables), next(tables), dose,
            f"Dose to find the light columns: mean light-column recall {p.target:g}",
            ["The dose at which the mean light-column recall first reaches the target, log-linear between the "
             "doses run; interval: the noise draws of each dose resampled."], markdown=md)


# 3. The figure: per material and dose (rows) each modality (columns), the true columns circled.
def plot_modalities(examples, paths):
    """``examples``: (row title, {modality: (image, truth_xy, light)}) per row."""
    import matplotlib.pyplot as plt

    ncol = len(MODALITIES)
    fig, axes = plt.subplots(len(examples), ncol, figsize=(2.0 * ncol, 2.0 * len(examples) + 0.4), squeeze=False)
    for i, (label, panels) in enumerate(examples):
        for j, modality in enumerate(MODALITIES):
            ax = axes[i, j]
            ax.set_axis_off()
            if modality not in panels:
                continue
            image, xy, light = panels[modality]
            lo, hi = np.percentile(image, [1, 99.5])
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
            for keep, colour in ((~light, "tab:orange"), (light, "tab:cyan")):
                ax.plot(xy[keep, 0], xy[keep, 1], "o", ms=3, mfc="none", mec=colour, mew=0.6)
            ax.set_xlim(-0.5, image.shape[1] - 0.5)
            ax.set_ylim(image.shape[0] - 0.5, -0.5)
            ax.set_title(f"{label} {modality}", fontsize=7)
    fig.suptitle("Phase, vADF, iCoM, HAADF (circles: true columns; cyan: light)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)


examples = []
for path, material in zip(inp.examples, p.materials):
    with np.load(path) as z:
        keys = sorted({k.split("__")[0] for k in z.files}, key=int)
        for d in keys:
            panels = {m: (z[f"{d}__{m}__image"], z[f"{d}__{m}__truth_xy"], z[f"{d}__{m}__light"].astype(bool))
                      for m in MODALITIES if f"{d}__{m}__image" in z.files}
            examples.append((f"{material} {float(z[f'{d}__dose']):g}", panels))
plot_modalities(examples, [out.figure, out.figure_pdf])
log.info("ptycho report: %d materials, %d rows", len(p.materials), len(rows))
