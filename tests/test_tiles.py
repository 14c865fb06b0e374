"""Large images in tiles (issue 21): the same columns as the untiled run, none twice, small images unchanged."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from atomloc.locate import registry, tiles
from atomloc.locate.columns import annotate_columns, column_intensities
from atomloc.locate.learned import shipped_model
from atomloc.locate.registry import get_method, locate
from atomloc.testing import square_lattice

SPACING = 8.0
SMALL_TILE = 256


@pytest.fixture(scope="module")
def lattice():
    image, truth = square_lattice(SPACING, shape=(600, 700), seed=3)
    return image, truth


def _seam_distance(xy: np.ndarray, shape, tile_px: int) -> np.ndarray:
    """Distance (pixels) of each position from the nearest border between two tile cores."""
    grid = tiles.tiles(shape, 0, tile_px)
    rows = np.array(sorted({t.r0 for t in grid} - {0})) - 0.5
    cols = np.array(sorted({t.c0 for t in grid} - {0})) - 0.5
    return np.min(np.hstack([np.abs(xy[:, 1:2] - rows[None]), np.abs(xy[:, 0:1] - cols[None])]), axis=1)


def _both(image, method, monkeypatch):
    whole = locate(image, method)
    monkeypatch.setattr(tiles, "TILE_PX", SMALL_TILE)
    assert tiles.needs_tiles(image.shape)
    tiled = locate(image, method)
    return whole, tiled


@pytest.mark.parametrize("method", ["gaussfit", "log", "findfoci"])
def test_tiled_equals_untiled_away_from_seams(lattice, method, monkeypatch):
    image, _ = lattice
    whole, tiled = _both(image, method, monkeypatch)
    assert len(tiles.tiles(image.shape, 0, SMALL_TILE)) == 9
    assert abs(len(tiled) - len(whole)) <= 0.002 * len(whole)
    uxy, txy = whole[["x", "y"]].to_numpy(), tiled[["x", "y"]].to_numpy()
    distance, _ = cKDTree(txy).query(uxy)
    far = _seam_distance(uxy, image.shape, SMALL_TILE) > 2 * SPACING
    assert far.sum() > 0.5 * len(uxy)
    assert np.all(distance[far] < 0.01)
    # near the seams too, on this homogeneous lattice
    assert np.mean(distance < 0.01) > 0.99
    assert list(tiled.columns) == list(whole.columns)


@pytest.mark.parametrize("method", ["gaussfit", "log", "findfoci"])
def test_no_duplicates_at_seams(lattice, method, monkeypatch):
    image, _ = lattice
    whole, tiled = _both(image, method, monkeypatch)
    close_whole = cKDTree(whole[["x", "y"]].to_numpy()).query_pairs(0.3 * SPACING)
    close_tiled = cKDTree(tiled[["x", "y"]].to_numpy()).query_pairs(0.3 * SPACING)
    assert len(close_tiled) <= len(close_whole)


def test_small_images_go_through_whole(lattice, monkeypatch):
    """At or below the tile size: no tiling, the method's own result (byte-identical)."""
    image, _ = lattice
    image = image[:SMALL_TILE, :SMALL_TILE].copy()
    monkeypatch.setattr(tiles, "TILE_PX", SMALL_TILE)

    def refuse(*args, **kwargs):
        raise AssertionError("an image within the tile size was tiled")

    monkeypatch.setattr(registry, "_locate_tiled", refuse)
    found = locate(image, "gaussfit", spacing_px=SPACING)
    direct = get_method("gaussfit").func(image, SPACING).reset_index(drop=True)
    expected = annotate_columns(image, direct, spacing_px=SPACING)
    pd.testing.assert_frame_equal(found, expected, check_exact=True)


def test_column_intensities_tiled_are_the_same_numbers(lattice, monkeypatch):
    image, truth = lattice
    whole = column_intensities(image, truth[:, 0], truth[:, 1], spacing_px=SPACING)
    monkeypatch.setattr(tiles, "TILE_PX", 128)
    tiled = column_intensities(image, truth[:, 0], truth[:, 1], spacing_px=SPACING)
    np.testing.assert_array_equal(tiled, whole)


def test_cores_partition_the_image():
    shape = (1000, 2500)
    grid = tiles.tiles(shape, 64, 512)
    covered = np.zeros(shape, dtype=int)
    for t in grid:
        assert t.r1 - t.r0 <= 512 and t.c1 - t.c0 <= 512
        covered[t.r0:t.r1, t.c0:t.c1] += 1
        assert t.wr0 == max(0, t.r0 - 64) and t.wc1 == min(shape[1], t.c1 + 64)
    assert np.all(covered == 1)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-3, shape[1] + 2, 5000), rng.uniform(-3, shape[0] + 2, 5000)
    x[:4], y[:4] = [511.5, 511.49, -0.5, 2499.6], [499.5, 499.49, 0.0, 999.7]
    owners = sum(tiles.in_core(x, y, t, shape).astype(int) for t in grid)
    assert np.all(owners == 1)


def test_margin_from_the_spacing():
    assert tiles.tile_margin(None) == tiles.MIN_MARGIN_PX
    assert tiles.tile_margin(4.0) == tiles.MIN_MARGIN_PX
    assert tiles.tile_margin(30.0) == 240
    assert tiles.tile_margin(1e4) == tiles.TILE_PX // 2


@pytest.mark.skipif(not shipped_model("atomid").is_file(), reason="no shipped atomid weights")
def test_learned_tiles_share_the_whole_image_spacing(lattice, monkeypatch):
    """atomid: every tile resamples at the whole image's spacing; each tile scales its own input, so
    positions move by a few hundredths of a pixel (the method's own error is ~0.15 px)."""
    image, _ = lattice
    calls = []
    import atomloc.locate.learned as learned

    real = learned.column_spacing

    def counting(img, name="image"):
        calls.append(img.shape)
        return real(img, name)

    monkeypatch.setattr(learned, "column_spacing", counting)
    whole = locate(image, "atomid")
    monkeypatch.setattr(tiles, "TILE_PX", SMALL_TILE)
    method = get_method("atomid")
    monkeypatch.setitem(registry._REGISTRY, "atomid", dataclasses.replace(method, tile_spacing=counting))
    calls.clear()
    tiled = locate(image, "atomid")
    assert calls == [image.shape]  # once, on the whole image
    assert abs(len(tiled) - len(whole)) <= 0.002 * len(whole)
    distance, _ = cKDTree(tiled[["x", "y"]].to_numpy()).query(whole[["x", "y"]].to_numpy())
    assert np.median(distance) < 0.1 and np.mean(distance < 0.5) > 0.99
