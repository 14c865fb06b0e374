"""Multi-modal simulation, fused elemental maps and per-column chemistry (atomloc.analysis.chemistry)."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from atomloc.analysis.chemistry import (
    FusionModel,
    blur_maps,
    candidate_compositions,
    chemistry_scores,
    classify_columns,
    column_amplitudes,
    column_basis,
    column_field_maps,
    column_groups,
    column_model_maps,
    composition_counts,
    dose_reduction,
    edx_only_columns,
    field_chemistry,
    field_maps,
    fuse_maps,
    haadf_sigma_px,
    lattice_edx_columns,
    material_sites,
    nrmse,
    pooled_fit,
    total_variation,
    tune_fusion,
    tv_prox,
)
from atomloc.cli import main
from atomloc.core.errors import AtomlocInputError
from atomloc.io.images import write_image
from atomloc.io.multimodal import read_fields, write_fields
from atomloc.simulate.multimodal import MultimodalSpec, simulate_multimodal

MOS2 = {"material": "MoS2", "dopants": {"Re": 0.05, "W": 0.05}, "vacancy_element": "S", "vacancy_rate": 0.1}


@pytest.fixture(scope="module")
def field():
    return simulate_multimodal(MultimodalSpec.from_mapping({**MOS2, "edx_counts_per_pixel": 0.05, "seed": 5}))


def test_simulated_counts_and_truth(field):
    assert field["elements"] == ("Mo", "S", "Re", "W")
    truth_mean = field["edx_truth"].mean(axis=(1, 2))
    # one atom per Mo site averages edx_counts_per_pixel; 10 % of them are dopants; two S per S site
    assert truth_mean[0] == pytest.approx(0.05 * 0.9, rel=0.12)
    assert truth_mean[1] == pytest.approx(2 * 0.05 * 0.9, rel=0.12)  # 10 % vacancies
    # the counts are Poisson around truth + background
    assert field["edx"].mean() == pytest.approx(field["edx_truth"].mean() + 0.01, rel=0.1)
    cols = pd.DataFrame(field["columns"])
    assert set(cols.element) == {"Mo", "S2", "S", "Re", "W"}
    assert (cols[cols.element == "S"].pristine == "S2").all() and (cols[cols.element == "Re"].pristine == "Mo").all()
    assert (cols[cols.element == "S2"].n_S == 2).all() and (cols[cols.element == "W"].n_W == 1).all()
    again = simulate_multimodal(MultimodalSpec.from_mapping({**MOS2, "edx_counts_per_pixel": 0.05, "seed": 5}))
    assert np.array_equal(again["edx"], field["edx"]) and np.array_equal(again["haadf"], field["haadf"])


def test_multimodal_spec_names_the_bad_key():
    with pytest.raises(AtomlocInputError, match="dopant_host"):
        MultimodalSpec.from_mapping({"material": "MoS2", "dopant_host": "Sr"})
    with pytest.raises(AtomlocInputError, match="dopants"):
        MultimodalSpec.from_mapping({"material": "MoS2", "dopants": {"Re": 0.7, "W": 0.6}})
    with pytest.raises(AtomlocInputError, match="unknown keys"):
        MultimodalSpec.from_mapping({"material": "MoS2", "counts": 1})


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    n, h, w = 2, 6, 7
    x = rng.uniform(0.2, 2.0, size=(n, h, w))
    model = FusionModel(haadf_scaled=rng.uniform(0, 5, size=(h, w)), edx=rng.poisson(1.0, size=(n, h, w)).astype(float),
                        weights=np.array([1.3, 0.6]), eps=np.array([0.05, 0.1]), gamma=1.6, lambda_edx=0.7)
    grad = model.gradient(x)
    step = 1e-6
    for idx in [(0, 0, 0), (1, 3, 4), (0, 5, 6), (1, 2, 1)]:
        up, down = x.copy(), x.copy()
        up[idx] += step
        down[idx] -= step
        numeric = (model.value(up) - model.value(down)) / (2 * step)
        assert grad[idx] == pytest.approx(numeric, rel=1e-5, abs=1e-7)


def test_tv_step_is_the_proximal_map_of_scikit_image_tv():
    rng = np.random.default_rng(1)
    image = np.zeros((24, 24))
    image[6:18, 6:18] = 1.0
    noisy = image + rng.normal(0, 0.3, size=image.shape)
    weight = 0.2

    def objective(u):
        return 0.5 * ((u - noisy) ** 2).sum() + weight * total_variation(u)

    u = tv_prox(noisy, weight, max_num_iter=500)
    # the minimiser of 1/2 ||u - v||^2 + w TV(u): lower than the input, a constant, and the other weights' minimisers
    others = [noisy, np.full_like(noisy, noisy.mean()), tv_prox(noisy, 0.7 * weight, max_num_iter=500),
              tv_prox(noisy, 1.4 * weight, max_num_iter=500)]
    assert all(objective(u) < objective(o) for o in others)
    # and small perturbations do not lower it
    assert all(objective(u) <= objective(u + 1e-3 * rng.standard_normal(u.shape)) for _ in range(5))
    # total_variation is scikit-image's: forward differences, isotropic
    step = np.zeros((3, 3))
    step[:, 2] = 1.0
    assert total_variation(step) == pytest.approx(3.0)
    assert np.array_equal(tv_prox(noisy, 0.0), noisy)


def test_fusion_beats_raw_and_blur_on_the_heavy_map_and_converges(field):
    sigma = haadf_sigma_px(0.5, 20.0)
    result = fuse_maps(field["haadf"], field["edx"], [42, 16, 75, 74], lambda_edx=0.003, lambda_tv=0.003,
                       n_iter=150, haadf_sigma_px=sigma)
    assert np.all(np.diff(result.objective) <= 1e-9 * np.abs(result.objective[:-1]))  # monotone
    assert result.converged and result.objective[-1] < 0.9 * result.objective[0]
    assert (result.maps >= 0).all()
    truth = field["edx_truth"]
    fused = nrmse(result.maps[0], truth[0])
    raw = nrmse(field["edx"][0], truth[0])
    best_blur = min(nrmse(blur_maps(field["edx"], s)[0], truth[0]) for s in (0.5, 1.0, 1.5, 2.0, 3.0))
    assert fused < 0.5 * raw and fused < 0.8 * best_blur, (fused, raw, best_blur)


def test_fusion_refuses_bad_input(field):
    with pytest.raises(AtomlocInputError, match="same size"):
        fuse_maps(field["haadf"][:10], field["edx"], [42, 16, 75, 74])
    with pytest.raises(AtomlocInputError, match="atomic number"):
        fuse_maps(field["haadf"], field["edx"], [42, 16])
    with pytest.raises(AtomlocInputError, match="counts >= 0"):
        fuse_maps(field["haadf"], -field["edx"], [42, 16, 75, 74])
    with pytest.raises(AtomlocInputError, match="lambda_tv"):
        fuse_maps(field["haadf"], field["edx"], [42, 16, 75, 74], lambda_tv=-1)


def test_a_field_the_fusion_cannot_calibrate_is_left_out_not_fatal(field):
    # contrast reversed: the HAADF falls where the EDX counts are (at a few counts per column the
    # fitted scale falls below zero by chance in the same way)
    dark = {**field, "haadf": field["haadf"].max() - field["haadf"]}
    with pytest.raises(AtomlocInputError, match="fitted scale <= 0"):
        fuse_maps(dark["haadf"], dark["edx"], [42, 16, 75, 74])
    le, lt, grid = tune_fusion([dark], lambda_edx=[0.003, 0.3], lambda_tv=[0.03], n_iter=5)
    assert np.isnan(le) and np.isnan(lt) and grid["nrmse"].isna().all() and len(grid) == 2
    maps, seconds = field_maps(dark, blur_sigma_px=1.0, lambda_edx=0.003, lambda_tv=0.03, n_iter=5)
    assert set(maps) == set(seconds) == {"raw", "blur"}
    maps, _ = field_maps(field, blur_sigma_px=1.0, lambda_edx=0.003, lambda_tv=0.03, n_iter=5)
    assert set(maps) == {"raw", "blur", "fused"}
    assert np.isfinite(tune_fusion([field], lambda_edx=[0.003], lambda_tv=[0.03], n_iter=5)[0])


def test_nrmse_is_scale_invariant():
    truth = np.arange(16.0).reshape(4, 4)
    assert nrmse(3.0 * truth, truth) == pytest.approx(0.0, abs=1e-12)
    assert nrmse(np.zeros_like(truth), truth) == pytest.approx(1.0)


def test_classification_of_a_planted_lattice():
    """Planted columns with known compositions; their signals = atoms x level + Gaussian noise."""
    rng = np.random.default_rng(3)
    candidates = candidate_compositions(["Mo", "S2"], dopants=["Re", "W"], dopant_host="Mo", vacancy_element="S")
    assert list(candidates.label) == ["Mo", "Re", "W", "S2", "S"]
    truth = rng.choice(["Mo"] * 8 + ["S2"] * 8 + ["Re", "W", "S"], size=400)
    elements = ["Mo", "S", "Re", "W"]
    atoms = np.array([[composition_counts(t).get(e, 0) for e in elements] for t in truth], dtype=float)
    signals = pd.DataFrame(7.0 * atoms + rng.normal(0, 1.2, size=atoms.shape),
                           columns=[f"signal_{e}" for e in elements])
    predicted = classify_columns(signals, candidates)
    pristine = np.where(np.isin(truth, ["Mo", "Re", "W"]), "Mo", "S2")
    scores = chemistry_scores(predicted, truth, pristine)
    assert scores["accuracy"] >= 0.98 and scores["dopant_f1"] >= 0.95 and scores["vacancy_f1"] >= 0.9, scores
    # with a HAADF channel (sum of Z**1.5) a noisier EDX is rescued: Mo / S2 / S differ in Z
    z15 = {"Mo": 42 ** 1.5, "S2": 2 * 16 ** 1.5, "S": 16 ** 1.5, "Re": 75 ** 1.5, "W": 74 ** 1.5}
    noisy = pd.DataFrame(7.0 * atoms + rng.normal(0, 6.0, size=atoms.shape), columns=signals.columns)
    alone = chemistry_scores(classify_columns(noisy, candidates), truth, pristine)["accuracy"]
    noisy["signal_HAADF"] = np.array([z15[t] for t in truth]) * 0.1 + rng.normal(0, 1.0, size=len(truth))
    both = chemistry_scores(classify_columns(noisy, candidates), truth, pristine)["accuracy"]
    assert both > alone + 0.2 and both >= 0.95, (alone, both)
    # blurred EDX sums of a fraction of a count per atom (counts leaking from neighbours, a small background)
    # beside a clear HAADF: the HAADF names every site but Re / W, whatever the EDX noise suggests (starting
    # from all channels alone, the labels the EDX noise chose survived: 0.54-0.67 here)
    for seed in range(2):
        draw = np.random.default_rng(10 + seed)
        sparse = pd.DataFrame(draw.poisson(0.1 * atoms + 0.03).astype(float) * 0.4
                              + 0.05 * draw.gamma(1.0, 1.0, atoms.shape), columns=signals.columns)
        sparse["signal_HAADF"] = np.array([z15[t] for t in truth]) * 0.1 + draw.normal(0, 1.5, size=len(truth))
        got = classify_columns(sparse, candidates)["composition"].to_numpy()
        site = np.where(np.isin(truth, ["Re", "W"]), "ReW", truth)
        assert np.mean(np.where(np.isin(got, ["Re", "W"]), "ReW", got) == site) >= 0.97, seed


def test_field_chemistry_on_a_simulated_field(field):
    cols = pd.DataFrame(field["columns"])
    fused, table = field_chemistry(field["haadf"], field["edx"], field["elements"], x_px=cols.x, y_px=cols.y,
                                   sites=["Mo", "S2"], dopants=["Re", "W"], dopant_host="Mo", vacancy_element="S",
                                   edx_delocalisation_A=0.5, pixel_size_pm=20.0)
    assert fused.shape == field["edx"].shape
    scores = chemistry_scores(table, cols.element, cols.pristine)
    assert scores["accuracy"] >= 0.95, scores
    column, same = field_chemistry(field["haadf"], field["edx"], field["elements"], x_px=cols.x, y_px=cols.y,
                                   sites=["Mo", "S2"], dopants=["Re", "W"], dopant_host="Mo", vacancy_element="S",
                                   edx_delocalisation_A=0.5, pixel_size_pm=20.0, maps="column")
    pd.testing.assert_frame_equal(same, table)  # the classification does not depend on the maps returned
    truth = field["edx_truth"]
    for k in range(2):  # Mo, S at 0.05 counts: the column model's width from the HAADF fits + delocalisation
        assert nrmse(column[k], truth[k]) <= 0.6 * nrmse(fused[k], truth[k])
    with pytest.raises(AtomlocInputError, match="maps"):
        field_chemistry(field["haadf"], field["edx"], field["elements"], x_px=cols.x, y_px=cols.y, sites=["Mo", "S2"],
                        maps="tv")


def test_dose_reduction_of_known_curves():
    rows = []
    for c, a_ref, a_new in [(0.01, 0.5, 0.9), (0.1, 0.7, 1.0), (1.0, 1.0, 1.0)]:
        for f in range(3):
            rows += [{"counts_per_pixel": c, "field": f, "route": "raw", "accuracy": a_ref},
                     {"counts_per_pixel": c, "field": f, "route": "new", "accuracy": a_new}]
    table = dose_reduction(pd.DataFrame(rows), method="new", reference="raw", target=0.95, n_boot=50)
    row = table.iloc[0]
    # raw crosses 0.95 between 0.1 (0.7) and 1.0 (1.0): 0.1 * 10**(0.25/0.3); new between 0.01 (0.9) and 0.1 (1.0)
    assert row.counts_reference == pytest.approx(0.1 * 10 ** (0.25 / 0.3))
    assert row.counts_method == pytest.approx(0.01 * 10 ** 0.5)
    assert row.factor == pytest.approx(row.counts_reference / row.counts_method)
    assert row.lo == pytest.approx(row.factor) and row.hi == pytest.approx(row.factor) and not row.lower_bound


def test_fields_round_trip(tmp_path, field):
    write_fields(tmp_path / "f.h5", {"a": field})
    back = read_fields(tmp_path / "f.h5")["a"]
    assert back["elements"] == field["elements"]
    assert np.array_equal(back["edx"], field["edx"]) and np.array_equal(back["columns"]["element"],
                                                                       field["columns"]["element"])
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(AtomlocInputError, match="bad.h5"):
        read_fields(tmp_path / "bad.h5")


def test_fusion_peer_leaves_its_inputs_alone(field):
    pytest.importorskip("multimodal_fusion")
    from atomloc.analysis.chemistry import fusion_peer

    haadf, edx = field["haadf"].copy(), field["edx"].copy()
    out = fusion_peer(haadf, edx, field["elements"], n_iter=5)
    assert out.shape == edx.shape and np.isfinite(out).all()
    assert np.array_equal(haadf, field["haadf"]) and np.array_equal(edx, field["edx"])


def test_cli_chemistry(tmp_path, field, capsys):
    write_image(tmp_path / "haadf.tif", field["haadf"])
    for e, m in zip(field["elements"], field["edx"]):
        write_image(tmp_path / f"EDX_{e}.tif", m)
    out = tmp_path / "columns.csv"
    edx = [str(tmp_path / f"EDX_{e}.tif") for e in field["elements"]]
    rc = main(["chemistry", str(tmp_path / "haadf.tif"), *edx, "--material", "MoS2", "--dopants", "Re", "W",
               "--dopant-host", "Mo", "--vacancy", "S", "--pixel-size-pm", "20", "--edx-delocalisation-A", "0.5",
               "--maps-out", str(tmp_path / "fused.npy"), "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out)
    assert {"x", "y", "signal_Mo", "signal_HAADF", "composition", "dopant", "vacancy"} <= set(table.columns)
    assert np.load(tmp_path / "fused.npy").shape == field["edx"].shape
    assert "columns" in capsys.readouterr().err
    rc = main(["chemistry", str(tmp_path / "haadf.tif"), *edx, "--material", "MoS2", "--dopants", "Re", "W",
               "--dopant-host", "Mo", "--vacancy", "S", "--maps", "column", "--maps-out",
               str(tmp_path / "column.npy"), "--out", str(tmp_path / "columns2.csv")])
    column = np.load(tmp_path / "column.npy")
    assert rc == 0 and column.shape == field["edx"].shape
    assert nrmse(column[0], field["edx_truth"][0]) < nrmse(np.load(tmp_path / "fused.npy")[0], field["edx_truth"][0])
    capsys.readouterr()
    # a map of another size: one line naming it, no output
    write_image(tmp_path / "EDX_W.tif", field["edx"][3][:20])
    out.unlink()
    rc = main(["chemistry", str(tmp_path / "haadf.tif"), *edx, "--material", "MoS2", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "EDX_W.tif" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def _planted(shape, xy, counts, sigma_px, background):
    """Expected counts of Gaussian columns of unit-sum shape carrying ``counts`` each, plus a flat background."""
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    mean = np.full(shape, float(background))
    for (x, y), c in zip(xy, counts):
        g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px ** 2))
        mean += c * g / g.sum()
    return mean


def test_column_amplitudes_recover_planted_counts():
    xy = np.array([[20.3, 20.0], [28.0, 21.5], [40.0, 44.2], [15.0, 50.0]])  # two columns 7.8 px apart
    counts = np.array([4000.0, 1000.0, 2500.0, 0.0])
    mean = _planted((64, 64), xy, counts, 2.0, background=0.5)
    a = column_amplitudes(mean, column_basis((64, 64), xy[:, 0], xy[:, 1], 2.0), n_iter=2000)
    assert a[:4] == pytest.approx(counts, abs=0.01 * counts.max())
    assert a[4] == pytest.approx(0.5 * 64 * 64, rel=0.02)  # the flat background's counts


def test_pooled_fit_removes_the_background_bias_and_keeps_real_spread():
    # 128 columns on a 16 px grid, alternately 1 count of the element ("A") and none ("B"), in a background of
    # 0.01 counts per pixel (2/3 of all counts, as at 0.005 counts per pixel on MoS2)
    yy, xx = np.mgrid[8:128:16, 8:128:16]
    xy = np.column_stack([xx.ravel(), yy.ravel()]).astype(float)
    xy = np.vstack([xy, xy + 8.0])
    groups = np.repeat(["A", "B"], 64)
    basis = column_basis((136, 136), xy[:, 0], xy[:, 1], 1.8)
    pooled_a, pooled_b, ml_b = [], [], []
    for seed in range(6):
        mean = _planted((136, 136), xy, np.r_[np.ones(64), np.zeros(64)], 1.8, background=0.01)
        counts = np.random.default_rng(seed).poisson(mean).astype(float)
        a = pooled_fit(counts, basis, groups)[0]
        pooled_a.append(a[:64].mean())
        pooled_b.append(a[64:].mean())
        ml_b.append(column_amplitudes(counts, basis)[64:128].mean())
        assert a[:64].std() <= 0.2  # one true value: the Poisson spread pooled away (per-column ML: about 0.9)
    assert np.mean(pooled_a) == pytest.approx(1.0, abs=0.15)
    # per-column ML lends B the background's counts (0.37 on average here, pooled 0.09)
    assert np.mean(pooled_b) <= 0.15 and np.mean(ml_b) >= 2.5 * np.mean(pooled_b)
    # a group hiding two values keeps them apart; a group of two is left to itself
    truth = np.r_[np.tile([5.0, 50.0], 32), np.zeros(64)]
    counts = np.random.default_rng(0).poisson(_planted((136, 136), xy, truth, 1.8, background=0.01)).astype(float)
    a = pooled_fit(counts, basis, groups)[0]
    assert a[:64:2].mean() < 10 and a[1:64:2].mean() > 45
    # a member wholly outside the image (no pixels, no information) does not merge the two values
    outside = np.vstack([xy, [[-40.0, -40.0]]])
    with_outside = pooled_fit(counts, column_basis((136, 136), outside[:, 0], outside[:, 1], 1.8),
                              np.concatenate([groups, ["A"]]))[0]
    assert with_outside[:64:2].mean() < 10 and with_outside[1:64:2].mean() > 45
    two = np.r_[["C", "C"], groups[2:]]
    assert np.all(np.abs(pooled_fit(counts, basis, two)[0][:2] - truth[:2]) <= 3 * np.sqrt(truth[:2]) + 1)
    with pytest.raises(AtomlocInputError, match="groups"):
        pooled_fit(counts, basis, groups[:-1])


def test_edx_only_columns_finds_a_column_the_haadf_missed_and_nothing_in_noise():
    located = np.array([[16.0, 16.0], [48.0, 16.0], [16.0, 48.0]])
    hidden = np.array([[48.0, 48.0]])
    mean = _planted((64, 64), np.vstack([located, hidden]), [60, 60, 60, 60], 1.8, background=0.02)
    counts = np.random.default_rng(1).poisson(mean)[None].astype(float)
    found = edx_only_columns(counts, located[:, 0], located[:, 1], sigma_px=1.8, spacing_px=32.0)
    assert len(found) == 1 and np.hypot(*(found[0] - hidden[0])) <= 1.5
    total = 0
    for seed in range(10):  # pure noise around the located columns' counts: about 0.01 false columns per map
        flat = _planted((64, 64), located, [60, 60, 60], 1.8, background=0.05)
        noise = np.random.default_rng(seed).poisson(flat)[None].astype(float)
        total += len(edx_only_columns(noise, located[:, 0], located[:, 1], sigma_px=1.8, spacing_px=32.0))
    assert total <= 1


def test_lattice_edx_columns_find_a_sublattice_of_one_count_per_column_and_nothing_in_noise():
    yy, xx = np.mgrid[8:136:16, 8:136:16]
    located = np.column_stack([xx.ravel(), yy.ravel()]).astype(float)  # 64 columns on a 16 px square lattice
    yy, xx = np.mgrid[0:144:16, 0:144:16]
    hidden = np.column_stack([xx.ravel(), yy.ravel()]).astype(float)  # the cell centres: 81 columns
    found_all = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        # one count per hidden column in a background of 0.01 counts per pixel: none stands out alone
        mean = _planted((144, 144), np.vstack([located, hidden]), np.r_[np.full(64, 2.0), np.ones(len(hidden))],
                        1.8, background=0.01)
        counts = rng.poisson(mean)[None].astype(float)
        assert len(edx_only_columns(counts, located[:, 0], located[:, 1], sigma_px=1.8, spacing_px=11.3)) <= 3
        xy, site = lattice_edx_columns(counts, located[:, 0], located[:, 1], sigma_px=1.8, spacing_px=11.3,
                                       groups=np.zeros(64))
        d, _ = cKDTree(hidden).query(xy)
        assert set(site) == {0} and len(xy) <= len(hidden) and (d <= 0.75).all()
        found_all += int(len(xy) >= 0.85 * len(hidden))  # a row at the edge may fall just outside
        # noise around the located columns alone: no site
        flat = _planted((144, 144), located, np.full(64, 2.0), 1.8, background=0.01)
        noise = rng.poisson(flat)[None].astype(float)
        assert len(lattice_edx_columns(noise, located[:, 0], located[:, 1], sigma_px=1.8, spacing_px=11.3,
                                       groups=np.zeros(64))[0]) == 0
    assert found_all == 3
    scattered = np.random.default_rng(0).uniform(0, 144, (64, 2))  # no lattice: nothing to fold onto
    assert len(lattice_edx_columns(counts, scattered[:, 0], scattered[:, 1], sigma_px=1.8, spacing_px=11.3)[0]) == 0


def test_column_model_maps_beat_the_tuned_blur_at_low_counts():
    from atomloc.core.geometry import nearest_neighbour_spacing
    from atomloc.locate import locate

    fld = simulate_multimodal(MultimodalSpec.from_mapping({**MOS2, "edx_counts_per_pixel": 0.02, "seed": 7}))
    truth = fld["edx_truth"]
    xy = locate(fld["haadf"], "gaussfit")[["x", "y"]].to_numpy()
    spacing = nearest_neighbour_spacing(np.column_stack([fld["columns"]["x"], fld["columns"]["y"]]))
    candidates = candidate_compositions(material_sites("MoS2"), dopants=["Re", "W"], dopant_host="Mo",
                                        vacancy_element="S")
    groups = column_groups(fld, xy, spacing_px=spacing, candidates=candidates, blur_sigma_px=0.2 * spacing)
    maps, every = column_field_maps(fld, xy, sigma_px=1.8, spacing_px=spacing, groups=groups)
    assert len(every) >= len(xy)
    # the HAADF shows every MoS2 column: no lattice site is left for the EDX counts to add
    assert len(lattice_edx_columns(fld["edx"], xy[:, 0], xy[:, 1], sigma_px=1.8, spacing_px=spacing,
                                   groups=groups)[0]) == 0
    for k, element in enumerate(("Mo", "S")):
        best_blur = min(nrmse(blur_maps(fld["edx"], s)[k], truth[k]) for s in (1.0, 1.5, 2.0, 3.0))
        assert nrmse(maps[k], truth[k]) <= 0.6 * best_blur, element
        assert nrmse(maps[k], truth[k]) <= 0.4 * nrmse(fld["edx"][k], truth[k]), element
    with pytest.raises(AtomlocInputError, match="sigma_px"):
        column_model_maps(fld["edx"], xy[:, 0], xy[:, 1], sigma_px=0.0)
