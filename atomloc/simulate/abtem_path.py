"""abTEM's PRISM / multislice HAADF image of one periodic cell: the validation path of the
linear model (``simulator: prism`` or ``multislice``).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from scipy import ndimage

from atomloc.simulate.structures import build_atoms


def fast_gpts(extent_A, max_sampling_A: float) -> tuple[int, ...]:
    """Grid points of a wave over ``extent_A`` (Å per axis) sampled at most ``max_sampling_A``.

    abTEM takes ``ceil(extent / sampling)`` points, which for a crystal's cell is
    often a product with a large prime (219 = 3 x 73 for three 2H-MoS2 cells);
    this takes the next size whose FFT is fast (:func:`scipy.fft.next_fast_len`),
    a slightly finer sampling.
    """
    from scipy.fft import next_fast_len

    return tuple(int(next_fast_len(int(np.ceil(float(e) / max_sampling_A - 1e-9)))) for e in extent_A)


@contextmanager
def abtem_settings(n_workers: int | None = None):
    """abTEM's settings for atomloc's multislice and PRISM runs, inside a ``with``.

    * Dask's threaded scheduler (``n_workers`` threads; default: dask's, every core).
    * abTEM's ``numpy`` FFT path, not its default FFTW one (whose planning,
      ``FFTW_MEASURE``, times candidate plans: slow on one-off grids and not
      repeatable bit for bit), with its transforms of NumPy arrays done by
      :mod:`scipy.fft` (pocketfft like :mod:`numpy.fft`, the same numbers to
      ~1e-6, but about 20x faster on abTEM's stacks of 2-D transforms: the
      MoS2 4D-STEM scan of the tiny test config took 104 s with
      :mod:`numpy.fft`, 34 s with this and :func:`fast_gpts`).  abTEM 1.0 has
      no setting for this, so its FFT dispatcher is swapped for the duration
      of the ``with`` (and left alone where an abTEM version lacks it).
    """
    import abtem
    import abtem.core.fft as abtem_fft
    import dask
    import scipy.fft

    dispatch = getattr(abtem_fft, "_fft_dispatch", None)

    def scipy_dispatch(x, func_name, overwrite_x=False, **kwargs):
        if isinstance(x, np.ndarray) and hasattr(scipy.fft, func_name):
            return getattr(scipy.fft, func_name)(x, overwrite_x=overwrite_x, **kwargs)
        return dispatch(x, func_name, overwrite_x, **kwargs)

    workers = {} if n_workers is None else {"num_workers": int(n_workers)}
    with abtem.config.set({"fft": "numpy", "dask.scheduler": "threads"}), dask.config.set(**workers):
        if dispatch is not None:
            abtem_fft._fft_dispatch = scipy_dispatch
        try:
            yield
        finally:
            if dispatch is not None:
                abtem_fft._fft_dispatch = dispatch


def _orthogonal_cell(material: str):
    """The material's cell made rectangular (abTEM), with 2 Å of vacuum around a 2-D layer."""
    import abtem

    atoms = build_atoms(material)
    if np.isclose(atoms.cell[2, 2], 0.0):
        atoms.cell[2, 2] = 0.0
        atoms.center(vacuum=2.0, axis=2)
    return abtem.orthogonalize_cell(atoms)


def abtem_cell_images(material: str, simulator: str, energy_keV: float, semiangle_mrad: float,
                      defocus_A, detector_mrad=(45.0, 180.0), supercell_A: float = 12.0,
                      wave_sampling_A: float = 0.035, slice_thickness_A: float = 2.0) -> dict:
    """abTEM HAADF images of one periodic (rectangular) cell of a perfect crystal.

    The validation path of the simulator: the image of a perfect crystal is
    periodic, so one cell scanned at the Nyquist sampling of the probe
    (lambda / (4 alpha)) and Fourier-interpolated is the whole image.  The
    potential (Lobato, infinite projection, no frozen phonons) is built on a
    supercell of at least ``supercell_A`` so the probe does not overlap itself.

    Parameters
    ----------
    material : str
        One of :data:`atomloc.simulate.structures.MATERIALS`.
    simulator : str
        ``prism`` (abTEM ``SMatrix``, built once and reused for every defocus)
        or ``multislice`` (abTEM ``Probe.scan`` per defocus).
    energy_keV, semiangle_mrad : float
        Beam energy (keV) and convergence semi-angle (mrad).
    defocus_A : sequence of float
        One image per defocus, Å (abTEM's sign).
    detector_mrad : (float, float)
        Inner and outer HAADF detector angles, mrad.
    supercell_A, wave_sampling_A, slice_thickness_A : float
        Supercell size, wave-function sampling (fine enough for the outer
        angle) and slice thickness, Å.

    Returns
    -------
    dict
        ``images`` [n, ny, nx]: collected fraction of the incident beam,
        row = y, sample (0, 0) at the cell origin; ``sampling_A`` (y, x);
        ``cell_A`` (Lx, Ly).
    """
    import abtem

    atoms = _orthogonal_cell(material)
    cell = np.diag(atoms.cell)[:2]
    reps = np.ceil(supercell_A / cell).astype(int)
    supercell = atoms * (int(reps[0]), int(reps[1]), 1)
    wavelength = 12.2643 / np.sqrt(energy_keV * 1e3 * (1 + 0.97845e-6 * energy_keV * 1e3))
    nyquist = wavelength / (4 * semiangle_mrad * 1e-3)
    gpts = np.ceil(cell / (0.9 * nyquist)).astype(int)
    images = []
    with abtem_settings():
        potential = abtem.Potential(supercell, gpts=fast_gpts(np.diag(supercell.cell)[:2], wave_sampling_A),
                                    slice_thickness=slice_thickness_A, projection="infinite")
        detector = abtem.AnnularDetector(inner=detector_mrad[0], outer=detector_mrad[1])
        scan = abtem.GridScan(start=(0.0, 0.0), end=tuple(cell), gpts=tuple(int(g) for g in gpts))
        # abTEM 1.0.11's SMatrixArray.scan fails (reduce() gets 'rechunk'), so the S-matrix is not
        # built once and reused: SMatrix.scan rebuilds it for every defocus.
        smatrix = abtem.SMatrix(potential=potential, energy=energy_keV * 1e3, semiangle_cutoff=semiangle_mrad)
        for df in np.atleast_1d(defocus_A):
            if simulator == "prism":
                m = smatrix.scan(scan=scan, detectors=detector, ctf=abtem.CTF(defocus=float(df)), lazy=False)
            elif simulator == "multislice":
                probe = abtem.Probe(energy=energy_keV * 1e3, semiangle_cutoff=semiangle_mrad, defocus=float(df))
                m = probe.scan(potential, scan=scan, detectors=detector, lazy=False)
            else:
                raise ValueError(f"simulator must be prism or multislice, not {simulator!r}")
            if getattr(m, "is_lazy", False):
                m = m.compute()
            images.append(np.asarray(m.array, dtype=np.float64).T)  # abTEM (x, y) -> (row = y, x)
    return {"images": np.array(images), "sampling_A": cell[::-1] / gpts[::-1], "cell_A": cell}


def fourier_upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited (periodic) interpolation of a periodic image onto a ``factor`` times finer grid."""
    from scipy.signal import resample

    out = resample(image, image.shape[0] * factor, axis=0)
    return resample(out, image.shape[1] * factor, axis=1)


def sample_cell_image(cell_image: np.ndarray, sampling_A, shape_px, pixel_size_A: float, rotation_deg: float,
                      origin_A, drift_px, row_shift_px) -> np.ndarray:
    """Sample a periodic cell image at every pixel's scan position of a frame.

    The scan position of pixel (i, j) is ((j - dx_i), (i - dy_i)) pixels minus
    the frame's drift; it is taken into the lattice frame (rotation about the
    origin by ``-rotation_deg``, then the lattice origin ``origin_A``) and
    wrapped into the cell, as the linear path places its columns with
    :func:`atomloc.simulate.structures.tile_columns`.

    Returns
    -------
    ndarray, shape (H, W)
    """
    h, w = shape_px
    fine = fourier_upsample(cell_image, 4)
    step = np.asarray(sampling_A, dtype=np.float64) / 4  # (y, x)
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :]
    shift = np.asarray(row_shift_px, dtype=np.float64)
    ox, oy = np.asarray(origin_A, dtype=np.float64)
    px = (cols - shift[:, 0:1] - drift_px[0]) * pixel_size_A - ox
    py = np.broadcast_to((rows - shift[:, 1:2] - drift_px[1]) * pixel_size_A - oy, px.shape)
    theta = np.deg2rad(rotation_deg)  # into the lattice frame: q = R(-theta) (p - origin)
    qx = np.cos(theta) * px + np.sin(theta) * py
    qy = -np.sin(theta) * px + np.cos(theta) * py
    return ndimage.map_coordinates(fine, [qy / step[0], qx / step[1]], order=3, mode="grid-wrap")
