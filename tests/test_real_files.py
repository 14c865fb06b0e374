"""Real HAADF images read through rosettasciio: the two that the temul-toolkit wheel ships."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from atomloc.core.errors import AtomlocInputError
from atomloc.io.images import read_image, read_microscope_file
from atomloc.io.series import import_series


def temul_examples() -> Path:
    spec = importlib.util.find_spec("temul")
    if spec is None:
        pytest.skip("temul-toolkit (test extra) is not installed: its wheel carries the example files")
    return Path(list(spec.submodule_search_locations)[0]) / "example_data" / "experimental"


@pytest.mark.parametrize("name,shape,pixel_pm", [("example_Au_nanoparticle.emd", (2048, 2048), 7.4984),
                                                 ("example_Se_implanted_MoS2.dm3", (1024, 1024), 12.6953)])
def test_real_files_keep_their_calibration(name, shape, pixel_pm):
    frames, size, attrs = read_microscope_file(temul_examples() / name)
    assert frames.shape == (1, *shape) and frames.dtype == np.float32
    assert size == pytest.approx(pixel_pm, rel=1e-4)
    assert np.isfinite(frames).all() and frames.std() > 0
    assert read_image(temul_examples() / name).shape == shape
    series = import_series([temul_examples() / name])
    assert series.attrs["pixel_size_pm"] == pytest.approx(pixel_pm, rel=1e-4)


def test_emd_picks_the_haadf_signal():
    _, _, attrs = read_microscope_file(temul_examples() / "example_Au_nanoparticle.emd")
    assert attrs["title"] == "HAADF"


def test_nanoparticle_spacing_from_the_high_pass_fallback():
    """The Au particles' thickness contrast hides the lattice from the plain autocorrelation; after the
    high-pass the spacing is that of Au's lattice fringes ({111} 2.35 Å, {200} 2.04 Å)."""
    from atomloc.locate.spacing import estimate_spacing

    image, pixel_pm, _ = read_microscope_file(temul_examples() / "example_Au_nanoparticle.emd")
    with pytest.raises(AtomlocInputError, match="no repeat"):
        estimate_spacing(image[0], background_sigma_px=None)
    spacing_A = estimate_spacing(image[0]) * pixel_pm / 100
    assert 2.0 <= spacing_A <= 2.4


def test_corrupt_microscope_file_names_it(tmp_path):
    bad = tmp_path / "broken.dm4"
    bad.write_bytes(b"not a dm4 file at all")
    with pytest.raises(AtomlocInputError, match="broken.dm4"):
        read_microscope_file(bad)
    with pytest.raises(AtomlocInputError, match="missing.dm3: file not found"):
        import_series([tmp_path / "missing.dm3"])
