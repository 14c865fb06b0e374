"""The ptychography benchmark of the analysis layer: scoring, the HAADF anchor, one tiny run, the tables."""

import numpy as np
import pandas as pd
import pytest

from atomloc.analysis.ptycho import (
    METRICS,
    MODALITIES,
    ROW_COLUMNS,
    acceptance_lines,
    haadf_anchor,
    light_columns,
    light_dose_to_detect,
    noise_seed,
    phase_error,
    ptycho_benchmark,
    ptycho_tables,
    reference_phase,
    score_modality,
)
from atomloc.core.errors import AtomlocInputError
from atomloc.core.optics import electron_wavelength_A


def test_score_modality_planted():
    """7 x 7 columns 10 px apart, every other one light; every heavy one found 1 px off, half the light ones
    exactly, two false alarms between columns."""
    ii, jj = np.meshgrid(np.arange(7), np.arange(7), indexing="ij")
    truth = np.column_stack([20.0 + 10 * jj.ravel(), 20.0 + 10 * ii.ravel()])
    light = ((ii + jj) % 2 == 1).ravel()
    heavy_pred = truth[~light] + [1.0, 0.0]
    light_pred = truth[light][:12]
    pred = np.vstack([heavy_pred, light_pred, [[25.0, 25.0], [55.0, 65.0]]])
    s = score_modality(pred, truth, light, (100, 100), 0.2)
    tp, fp, fn = 25 + 12, 2, 12
    assert s["n"] == len(pred)
    assert s["precision"] == pytest.approx(tp / (tp + fp))
    assert s["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert s["recall_heavy"] == pytest.approx(1.0)
    assert s["recall_light"] == pytest.approx(0.5)
    assert s["rmse_pm"] == pytest.approx(20.0 * np.sqrt(25 / 37))  # 1 px = 20 pm, 25 of 37 pairs off by 1 px
    # Anisotropic pixels: an x offset counts at the x pixel size.
    assert score_modality(pred, truth, light, (100, 100), (0.1, 0.3))["rmse_pm"] == pytest.approx(
        30.0 * np.sqrt(25 / 37))
    # Nothing found: zero scores, no RMSE; no light columns: NaN light recall.
    empty = score_modality(np.empty((0, 2)), truth, light, (100, 100), 0.2)
    assert empty["f1"] == 0 and empty["recall_light"] == 0 and np.isnan(empty["rmse_pm"])
    assert np.isnan(score_modality(pred, truth, np.zeros(len(truth), bool), (100, 100), 0.2)["recall_light"])
    with pytest.raises(AtomlocInputError):
        score_modality(pred, truth, light[:-1], (100, 100), 0.2)


def test_light_columns_and_noise_seed():
    assert light_columns(["Mo", "S2", "S", "SrO", "O", "C", "WS"]).tolist() == [False, True, True, False, True,
                                                                                True, False]
    seeds = {noise_seed(0, k, s) for k in range(3) for s in range(2)}
    assert len(seeds) == 6 and noise_seed(0, 1, 1) == noise_seed(0, 1, 1) != noise_seed(1, 1, 1)


def test_haadf_anchor_peaks_at_truth():
    from atomloc.locate import locate

    image, truth, light = haadf_anchor("MoS2", scan_shape=(40, 44), scan_sampling_A=(0.29, 0.31),
                                       dose_e_per_A2=1.0e5, seed=3)
    assert image.shape == (40, 44) and image.dtype == np.float32
    assert light.any() and (~light).any() and len(light) == len(truth)
    found = locate(image.astype(np.float64), "gaussfit")[["x", "y"]].to_numpy()
    s = score_modality(found, truth, light, image.shape, 0.30)
    assert s["f1"] >= 0.95 and s["recall_light"] >= 0.95 and s["rmse_pm"] < 10.0
    # The heavy (Mo) columns are the brightest: the image is larger at them than at the light ones.
    inside = (truth[:, 0] > 1) & (truth[:, 0] < 42) & (truth[:, 1] > 1) & (truth[:, 1] < 38)
    at = image[np.round(truth[inside, 1]).astype(int), np.round(truth[inside, 0]).astype(int)]
    assert at[~light[inside]].mean() > 1.5 * at[light[inside]].mean()
    # A tiny scan still gets a 16-pixel frame; the dose scales the counts.
    small, _, _ = haadf_anchor("MoS2", scan_shape=(10, 12), scan_sampling_A=0.3, dose_e_per_A2=1.0e3, seed=0)
    assert small.shape == (16, 16) and small.mean() < image.mean() / 20


@pytest.fixture(scope="module")
def tiny_run():
    """2 x 1 MoS2 cells (19 x 22 positions), one dose, one draw, 2 iterations (~15 s)."""
    return ptycho_benchmark("MoS2", doses=[1.0e4], seeds=1, n_iterations=2, batch_size=64, locators=["gaussfit"],
                            locator_params={"gaussfit": {"spacing_px": 6.0}}, seed=0, repeats=(2, 1))


def test_ptycho_benchmark_tiny(tiny_run):
    rows = tiny_run["rows"]
    assert list(rows.columns) == list(ROW_COLUMNS)
    assert len(rows) == len(MODALITIES)
    assert list(rows["modality"]) == list(MODALITIES)
    assert set(rows["method"]) == {"gaussfit"} and set(rows["material"]) == {"MoS2"}
    assert set(rows["dose_e_per_A2"]) == {1.0e4} and set(rows["noise_seed"]) == {0}
    for col in ("f1", "precision", "recall_heavy", "recall_light"):
        assert rows[col].between(0, 1).all(), col
    assert (rows["time_image_s"] > 0).all() and (rows["time_locate_s"] >= 0).all()
    haadf = rows.set_index("modality").loc["HAADF"]
    assert haadf["f1"] > 0.5  # the linear-model frame at 1e4 e/Å² with the spacing given
    ex = tiny_run["examples"][1.0e4]
    shape = tiny_run["scan"]["scan_shape"]
    assert set(ex["images"]) == set(MODALITIES)
    for m in ("phase", "vADF", "iCoM"):
        assert ex["images"][m].shape == shape
        xy, light = ex["truth"][m]
        assert len(xy) == len(light) and light.any()
    assert ex["images"]["HAADF"].shape == tuple(max(16, n) for n in shape)


def test_ptycho_benchmark_rejects_bad_settings():
    for kwargs in ({"doses": []}, {"doses": [-1.0]}, {"seeds": 0}, {"locators": []}, {"locators": ["nope"]}):
        with pytest.raises(AtomlocInputError):
            ptycho_benchmark("MoS2", **kwargs)


def synthetic_rows() -> pd.DataFrame:
    """phase: light recall 0.9 at 1e3 and 1.0 at 1e4 (0.95 crossed at 10**3.5); vADF: never."""
    rows = []
    for modality, recalls in (("phase", (0.9, 1.0, 1.0)), ("vADF", (0.1, 0.5, 0.7)), ("HAADF", (0.2, 0.6, 0.8)),
                              ("iCoM", (0.5, 0.96, 1.0))):
        for dose, r in zip((1.0e3, 1.0e4, 1.0e5), recalls):
            for s in range(2):
                rows.append({"material": "MoS2", "dose_e_per_A2": dose, "noise_seed": s, "modality": modality,
                             "method": "gaussfit", "n": 10, "f1": 0.5, "precision": 1.0, "recall_heavy": 1.0,
                             "recall_light": r, "rmse_pm": {"phase": 2.0, "vADF": 5.0}.get(modality, 3.0),
                             "time_image_s": 1.0, "time_locate_s": 0.1})
    return pd.DataFrame(rows)


def test_light_dose_to_detect_crossing():
    out = light_dose_to_detect(synthetic_rows(), target=0.95, n_boot=50, seed=0).set_index("modality")
    assert out.loc["phase", "dose_to_detect_e_per_A2"] == pytest.approx(10 ** 3.5)
    assert out.loc["phase", "reached"] and not out.loc["phase", "below_range"]
    assert not out.loc["vADF", "reached"] and np.isnan(out.loc["vADF", "dose_to_detect_e_per_A2"])
    # iCoM: 0.5 -> 0.96 between 1e3 and 1e4, log-linear.
    assert out.loc["iCoM", "dose_to_detect_e_per_A2"] == pytest.approx(10 ** (3 + 0.45 / 0.46))


def test_ptycho_tables_and_acceptance():
    summary, dose = ptycho_tables(synthetic_rows(), target=0.95, n_boot=50, seed=0)
    assert list(summary["modality"].drop_duplicates()) == list(MODALITIES)
    assert len(summary) == 4 * 3 and (summary["n_seeds"] == 2).all()
    for m in METRICS:
        assert {f"{m}_mean", f"{m}_lo", f"{m}_hi"} <= set(summary.columns)
    phase = summary[summary["modality"] == "phase"]
    assert phase["recall_light_mean"].tolist() == pytest.approx([0.9, 1.0, 1.0])
    assert list(dose["modality"]) == list(MODALITIES)
    acc = acceptance_lines(summary).iloc[0]
    assert acc["light"] and acc["doses"] == "10000, 100000"
    assert acc["rmse"] and acc["phase_rmse_pm"] == pytest.approx(2.0) and acc["vadf_rmse_pm"] == pytest.approx(5.0)
    strict = acceptance_lines(summary, ceiling=0.55, rmse_ratio=0.3).iloc[0]
    assert not strict["light"] and not strict["rmse"]


def test_phase_error_ignores_a_constant_and_scores_a_flat_phase_one():
    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 0.3, (30, 40))
    assert phase_error(reference + 0.7, reference) == pytest.approx(0.0, abs=1e-12)
    assert phase_error(np.zeros_like(reference), reference) == pytest.approx(1.0)
    assert phase_error(2 * reference, reference, margin_px=0) == pytest.approx(1.0)
    # the edges are left out
    noisy_edges = reference.copy()
    noisy_edges[:4] += 5.0
    assert phase_error(noisy_edges, reference, margin_px=4) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(AtomlocInputError, match="shapes differ"):
        phase_error(reference[:-1], reference)


def test_reference_phase_keeps_the_transferred_band_and_drops_the_rest():
    # a periodic 0.05 Å grid of 12.8 x 10.0 Å; the scan samples the same grid (no anti-alias blur)
    ny, nx, step = 200, 256, 0.05
    y, x = np.mgrid[0:ny, 0:nx] * step
    cutoff = 2 * 25e-3 / electron_wavelength_A(300.0)  # 2 alpha / lambda, 1/Å (2.5 at 300 kV, 25 mrad)
    low = np.cos(2 * np.pi * (x / 12.8 * 16))  # 1.25 / Å: inside the band
    high = np.cos(2 * np.pi * (y / 10.0 * 40))  # 4 / Å: outside
    assert 1.25 < cutoff < 4.0
    out = reference_phase(low + high, (step, step), energy_keV=300.0, semiangle_mrad=25.0,
                          scan_sampling_A=(step, step), scan_origin_A=(0.0, 0.0), scan_shape=(ny - 8, nx - 8))
    np.testing.assert_allclose(out, low[:ny - 8, :nx - 8], atol=1e-6)


def test_projected_phase_peaks_on_the_metal_columns():
    from atomloc.simulate.fourd import projected_phase, supercell_atoms

    phase, sampling = projected_phase("MoS2", repeats=(1, 1), sampling_A=0.05)
    atoms = supercell_atoms("MoS2", repeats=(1, 1))
    assert phase.shape == tuple(int(round(c / s)) for c, s in zip(np.diag(atoms.cell)[1::-1], sampling))
    assert phase.min() >= 0.0
    mo = atoms.positions[np.array(atoms.get_chemical_symbols()) == "Mo"][:, :2]
    row, col = np.unravel_index(np.argmax(phase), phase.shape)
    peak_xy = np.array([col * sampling[1], row * sampling[0]])
    assert np.min(np.hypot(*(mo - peak_xy).T)) <= 0.06
    # the S2 column's phase (two S atoms) is a fraction of the Mo column's
    s_xy = atoms.positions[np.array(atoms.get_chemical_symbols()) == "S"][0, :2]
    row, col = (round(s_xy[1] / sampling[0]) % phase.shape[0], round(s_xy[0] / sampling[1]) % phase.shape[1])
    s_phase = phase[row, col]
    assert 0.2 * phase.max() < s_phase < 0.9 * phase.max()
