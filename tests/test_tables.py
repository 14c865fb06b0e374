"""Summary tables: grouping, dose deciles, hardest / easiest image, Markdown views."""

import numpy as np
import pandas as pd
import pytest

from atomloc.analysis.tables import (
    compact_markdown,
    conditions_table,
    dose_bins,
    dose_table,
    hardest_and_easiest,
    split_rows,
    summarise,
    write_table,
)


def per_image():
    rows = []
    for method, base in (("a", 0.9), ("b", 0.7)):
        for frame in range(10):
            for reference in ("truth", "labels"):
                rows.append({"method": method, "dataset": "d1", "frame": frame, "reference": reference,
                             "dose_e_per_A2": 1000.0 * (frame + 1), "f1": base + 0.01 * frame,
                             "rmse_pm": 10.0 - frame, "crlb_pm": 5.0, "tp": 10, "fp": 1, "fn": 2})
    return pd.DataFrame(rows)


def test_summarise_mean_std_and_counts():
    rows = per_image()
    s = summarise(rows[rows.reference == "truth"], by="method", metrics=["f1"]).set_index("method")
    assert s.loc["a", "f1_mean"] == pytest.approx(0.945)
    assert s.loc["a", "f1_std"] == pytest.approx(np.std(0.9 + 0.01 * np.arange(10), ddof=1))
    assert s.loc["a", "tp"] == 100 and s.loc["a", "n_images"] == 10
    assert "rmse_pm_mean" not in s  # only the metrics asked for


def test_dose_deciles_split_the_frames_evenly():
    rows = per_image()
    bins = dose_bins(rows, 5)
    assert sorted(set(bins)) == [1, 2, 3, 4, 5]
    assert (rows.loc[bins == 1, "frame"].isin([0, 1])).all()
    table = dose_table(rows[rows.reference == "truth"], 5)
    first = table[(table.dose_decile == 1) & (table.method == "a")].iloc[0]
    assert first.dose_min_e_per_A2 == 1000.0 and first.dose_max_e_per_A2 == 2000.0
    assert first.f1_mean == pytest.approx(0.905)


def test_conditions_cross_focus_and_dose():
    rows = per_image()
    rows = rows[rows.reference == "truth"].assign(in_focus=lambda r: r.frame % 2 == 0)  # even frames in focus
    table = conditions_table(rows, dose_split_e_per_A2=5000.0).set_index(["focus", "dose", "method"])
    cell = table.loc[("within depth of field", "< 5000 e/A2", "a")]  # frames 0, 2 (doses 1000, 3000)
    assert cell.n_images == 2 and cell.f1_mean == pytest.approx(0.91)
    cell = table.loc[("beyond depth of field", ">= 5000 e/A2", "b")]  # frames 5, 7, 9
    assert cell.n_images == 3 and cell.f1_mean == pytest.approx(0.77)
    assert len(table) == 8
    assert conditions_table(rows.drop(columns="in_focus")).empty  # real series: no defocus known
    partial = rows.astype({"in_focus": object})
    partial.loc[partial.frame == 0, "in_focus"] = None
    assert conditions_table(partial, 5000.0)["n_images"].sum() == 18


def test_hardest_and_easiest_use_the_mean_over_methods():
    rows = per_image()
    assert hardest_and_easiest(rows[rows.reference == "truth"]) == (("d1", 0), ("d1", 9))
    with pytest.raises(ValueError):
        hardest_and_easiest(rows.iloc[:0])


def test_split_rows_prefers_truth():
    rows = per_image()
    got = split_rows(rows, {"d1": "test"}, "test")
    assert set(got.reference) == {"truth"}
    got = split_rows(rows[rows.reference == "labels"], {"d1": "test"}, "test")
    assert set(got.reference) == {"labels"}
    assert split_rows(rows, {"d1": "test"}, "scale").empty


def test_compact_markdown_and_write(tmp_path):
    rows = per_image()
    s = summarise(rows[(rows.reference == "truth") & (rows.frame == 0)], by="method", metrics=["f1", "rmse_pm"])
    md = compact_markdown(s, ["method"], ["f1", "rmse_pm"])
    assert list(md.columns) == ["method", "images", "F1", "RMSE (pm)"]
    assert md.iloc[0]["F1"] == "0.900"  # one image: no ± std
    write_table(tmp_path / "t.csv", tmp_path / "t.md", s, "Title", ["a note"], markdown=md)
    text = (tmp_path / "t.md").read_text()
    assert text.startswith("# Title") and "- a note" in text and "| method" in text
    assert pd.read_csv(tmp_path / "t.csv").shape[0] == 2


def test_read_table_or_empty(tmp_path):
    from atomloc.analysis.tables import read_table_or_empty

    (tmp_path / "empty.csv").write_text("")
    assert read_table_or_empty(tmp_path / "empty.csv").empty
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    assert read_table_or_empty(tmp_path / "t.csv").to_dict("list") == {"a": [1], "b": [2]}
