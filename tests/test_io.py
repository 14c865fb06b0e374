import numpy as np
import pandas as pd
import pytest
from PIL import Image

from atomloc.core.errors import AtomlocInputError
from atomloc.io.files import atomic_path
from atomloc.io.images import read_image
from atomloc.io.positions import read_positions, write_positions
from atomloc.io.series import Series, Truth, read_frame, read_series, write_series


def test_read_formats_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    grey8 = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    Image.fromarray(grey8).save(tmp_path / "g.bmp")
    Image.fromarray(grey8).save(tmp_path / "g.png")
    Image.fromarray(np.dstack([grey8] * 3)).save(tmp_path / "rgb.bmp")
    g16 = rng.integers(0, 65535, (40, 50)).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    import tifffile

    tifffile.imwrite(tmp_path / "f.tif", g16.astype(np.float32))
    np.save(tmp_path / "a.npy", g16.astype(np.float64))
    for name, expect in [("g.bmp", grey8), ("g.png", grey8), ("rgb.bmp", grey8), ("g16.png", g16),
                         ("f.tif", g16), ("a.npy", g16)]:
        img = read_image(tmp_path / name)
        assert img.shape == (40, 50) and img.dtype == np.float64
        assert np.array_equal(img, expect.astype(np.float64)), name


def test_colour_rgb_to_luminance(tmp_path):
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 0] = 100
    rgb[..., 1] = np.arange(20)[None, :]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    img = read_image(tmp_path / "c.png")
    assert img[0, 5] == pytest.approx(0.2125 * 100 + 0.7154 * 5)


def test_truncated_file_names_file(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    path = tmp_path / "cut.bmp"
    Image.fromarray(data).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(AtomlocInputError, match="cut.bmp"):
        read_image(path)


@pytest.mark.parametrize("arr,msg", [(np.full((20, 20), 2.0), "constant"), (np.full((20, 20), np.nan), "NaN"),
                                     (np.zeros((3, 20)), "too small"), (np.array(["a"] * 100).reshape(10, 10), "dtype")])
def test_bad_arrays(tmp_path, arr, msg):
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(AtomlocInputError, match=msg):
        read_image(tmp_path / "bad.npy")


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(AtomlocInputError, match="not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "x.jpg2").write_text("hi")
    with pytest.raises(AtomlocInputError, match="unsupported"):
        read_image(tmp_path / "x.jpg2")


def test_positions_roundtrip_and_atomic(tmp_path):
    df = pd.DataFrame({"x": [1.23456789, 2.0], "y": [3.0, 4.5], "score": [0.1, 0.2]})
    write_positions(tmp_path / "p.csv", df)
    back = read_positions(tmp_path / "p.csv")
    assert np.allclose(back.x, [1.23457, 2.0]) and list(back.columns) == ["x", "y", "score"]
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "q.csv") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not (tmp_path / "q.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


def test_series_roundtrip_reproducible_bytes(tmp_path):
    frames = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    truth = Truth(np.ones((2, 3)), np.zeros((2, 3)), np.array(["Mo", "S2", "Mo"]),
                  np.array(["metal", "chalcogen", "metal"]), extra={"strain": np.zeros((3, 3))})
    series = Series(frames, {"pixel_size_pm": 20.0, "material": "MoS2"}, {"drift_px": np.ones((2, 2))}, truth)
    for name in ("a.h5", "b.h5"):
        write_series(tmp_path / name, series)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    s = read_series(tmp_path / "a.h5")
    assert s.name == "a" and s.pixel_size_pm == 20.0 and s.n_frames == 2 and s.shape_px == (16, 16)
    assert np.array_equal(s.frames, frames) and np.array_equal(s.drift_px, np.ones((2, 2)))
    assert s.dose_e_per_A2 is None and s.in_focus() == (None, None)
    assert s.attrs["material"] == "MoS2" and s.truth.element.tolist() == ["Mo", "S2", "Mo"]
    assert np.array_equal(s.truth.positions(1, kinds=["metal"]), [[1.0, 0.0], [1.0, 0.0]])
    assert np.array_equal(s.truth.extra["strain"], np.zeros((3, 3)))


def test_series_needs_frames_and_pixel_size(tmp_path):
    with pytest.raises(AtomlocInputError, match="pixel_size_pm > 0"):
        Series(np.zeros((1, 8, 8)), {"material": "MoS2"})
    with pytest.raises(AtomlocInputError, match=r"\[n, H, W\]"):
        Series(np.zeros((8, 8)), {"pixel_size_pm": 20.0})
    with pytest.raises(AtomlocInputError, match=r"truth lacks \['kind'\]"):
        Truth.from_arrays({"x": np.zeros((1, 2)), "y": np.zeros((1, 2)), "element": np.array(["Mo", "Mo"])})


def test_read_frame_loads_one_frame(tmp_path):
    frames = np.random.default_rng(1).random((3, 16, 16)).astype(np.float32)
    write_series(tmp_path / "s.h5", Series(frames, {"pixel_size_pm": 15.0}))
    image, attrs = read_frame(tmp_path / "s.h5", 2)
    assert np.array_equal(image, frames[2]) and attrs["pixel_size_pm"] == 15.0
    with pytest.raises(AtomlocInputError, match="frame 3 requested but the series has 3"):
        read_frame(tmp_path / "s.h5", 3)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(AtomlocInputError, match="bad.h5"):
        read_frame(tmp_path / "bad.h5", 0)


def test_corrupt_series(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(AtomlocInputError, match="bad.h5"):
        read_series(tmp_path / "bad.h5")
