"""4D-STEM scans of a perfect crystal by abTEM multislice, with the true columns.

A periodic (rectangular) supercell of the material is scanned over its whole
extent; every probe position records the diffraction pattern on a pixelated
detector, cropped to ``max_angle_mrad`` and binned, then taken to a dose by Poisson
noise.  The scan's real calibration is kept: abTEM's ``GridScan(sampling=...)``
rounds the number of positions, so the step actually used (``scan.sampling``) is
stored, not the one asked for.
"""

from __future__ import annotations

import numpy as np

from atomloc.core.errors import AtomlocInputError
from atomloc.core.optics import electron_wavelength_A
from atomloc.io.fourd import FourDSTEM
from atomloc.simulate.abtem_path import abtem_settings, fast_gpts
from atomloc.simulate.structures import build_atoms, project_columns

LIGHT_ELEMENTS = frozenset({"H", "Li", "Be", "B", "C", "N", "O", "F", "S"})
"""Columns made only of these elements are ``light`` (scored separately: S, O, C, N ...)."""


def supercell_atoms(material: str, *, min_size_A: float = 10.0, repeats: tuple[int, int] | None = None,
                    vacuum_A: float = 2.0):
    """The material's cell made rectangular (abTEM) and repeated to at least ``min_size_A`` along x and y.

    A 2-D layer (no period along z) gets ``vacuum_A`` of vacuum above and below.

    Returns
    -------
    ase.Atoms
        Orthogonal cell, viewing direction along z.
    """
    import abtem

    atoms = build_atoms(material)
    if np.isclose(atoms.cell[2, 2], 0.0):
        atoms.cell[2, 2] = 0.0
        atoms.center(vacuum=vacuum_A, axis=2)
    atoms = abtem.orthogonalize_cell(atoms)
    cell = np.diag(atoms.cell)[:2]
    if repeats is None:
        repeats = tuple(int(r) for r in np.maximum(np.ceil(min_size_A / cell - 1e-9), 1))
    if len(repeats) != 2 or min(repeats) < 1:
        raise AtomlocInputError(f"repeats must be two integers >= 1 (got {repeats})")
    return atoms * (int(repeats[0]), int(repeats[1]), 1)


def projected_phase(material: str = "MoS2", *, min_size_A: float = 10.0, repeats: tuple[int, int] | None = None,
                    energy_keV: float = 300.0, sampling_A: float = 0.05,
                    slice_thickness_A: float = 1.0) -> tuple[np.ndarray, tuple[float, float]]:
    """The specimen's true phase: sigma x its projected potential, on the supercell :func:`simulate_4dstem` scans.

    abTEM's projected potential (``Potential.project``, the same atoms, parametrisation
    and slicing as the 4D-STEM simulation) times the interaction parameter
    (``abtem.core.energy.energy2sigma``): the phase a weak, thin object gives the
    wave, the quantity a ptychographic reconstruction estimates.  The grid is periodic,
    with pixel (0, 0) at the supercell's origin (the scan's first position).

    Parameters
    ----------
    material, min_size_A, repeats, energy_keV, slice_thickness_A
        As for :func:`simulate_4dstem`.
    sampling_A : float
        Requested grid sampling, Å (abTEM fits a whole number of pixels to the cell).

    Returns
    -------
    phase : ndarray of float64, shape (ny, nx)
        Radians.
    sampling_A : (float, float)
        The grid's sampling (y, x), Å.
    """
    import abtem
    from abtem.core.energy import energy2sigma

    atoms = supercell_atoms(material, min_size_A=min_size_A, repeats=repeats)
    with abtem_settings():
        potential = abtem.Potential(atoms, sampling=sampling_A, slice_thickness=slice_thickness_A,
                                    projection="infinite")
        projected = potential.project()
        if getattr(projected, "is_lazy", False):
            projected = projected.compute(progress_bar=False)
    phase = energy2sigma(energy_keV * 1e3) * np.asarray(projected.array, dtype=np.float64).T  # (x, y) -> (y, x)
    return phase, tuple(float(v) for v in projected.sampling)[::-1]


def truth_columns(atoms, scan_origin_A, scan_sampling_A, scan_shape, margin_px: float = 0.5) -> dict:
    """The projected columns of a periodic supercell in scan pixels.

    Parameters
    ----------
    atoms : ase.Atoms
        Orthogonal periodic cell (viewing direction along z).
    scan_origin_A, scan_sampling_A : (float, float)
        The scan grid (y, x), Å.
    scan_shape : (int, int)
        Scan positions (ny, nx).
    margin_px : float
        Columns up to this far outside the scan grid are kept (with their periodic images).

    Returns
    -------
    dict
        ``x``, ``y`` float64 scan pixels (x = column index); ``element`` and ``kind``
        (:func:`atomloc.simulate.structures.project_columns`); ``light`` bool (the
        column's atoms are all in :data:`LIGHT_ELEMENTS`); ``n_atoms`` int.
    """
    from ase.data import chemical_symbols

    cols = project_columns(atoms)
    lx, ly = np.diag(atoms.cell)[:2]
    oy, ox = scan_origin_A
    sy, sx = scan_sampling_A
    ny, nx = scan_shape
    out = {"x": [], "y": [], "element": [], "kind": [], "light": [], "n_atoms": []}
    for (cx, cy), element, kind, zs in zip(cols.xy_A, cols.element, cols.kind, cols.atomic_numbers):
        light = all(chemical_symbols[z] in LIGHT_ELEMENTS for z in zs)
        for i in (-1, 0, 1):
            for j in (-1, 0, 1):
                px = (cx + i * lx - ox) / sx
                py = (cy + j * ly - oy) / sy
                if -margin_px <= px <= nx - 1 + margin_px and -margin_px <= py <= ny - 1 + margin_px:
                    out["x"].append(px)
                    out["y"].append(py)
                    out["element"].append(str(element))
                    out["kind"].append(str(kind))
                    out["light"].append(light)
                    out["n_atoms"].append(len(zs))
    order = np.lexsort((np.array(out["x"]), np.array(out["y"])))
    return {"x": np.array(out["x"], dtype=np.float64)[order], "y": np.array(out["y"], dtype=np.float64)[order],
            "element": np.array(out["element"], dtype=str)[order], "kind": np.array(out["kind"], dtype=str)[order],
            "light": np.array(out["light"], dtype=bool)[order],
            "n_atoms": np.array(out["n_atoms"], dtype=np.int64)[order]}


def fast_length(n_max: int) -> int:
    """The largest length <= ``n_max`` with no prime factor above 5 (a fast FFT size)."""
    for n in range(int(n_max), 0, -1):
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
    return 1


def crop_and_bin(patterns: np.ndarray, angular_sampling_mrad, max_angle_mrad: float, bin_factor: int) -> np.ndarray:
    """Crop diffraction patterns (zero angle at pixel ``n // 2``) to ``+-max_angle_mrad`` and bin them.

    Per axis the result has the largest fast FFT length (:func:`fast_length`) of
    pixels whose centres lie within ``max_angle_mrad``; the crop is placed so that
    the zero angle is again the centre of pixel ``n // 2`` of the result (hence an
    odd ``bin_factor``: an even one would put it on a pixel edge).

    Parameters
    ----------
    patterns : ndarray, shape (..., ky, kx)
    angular_sampling_mrad : (float, float)
        Pixel size (y, x) before binning, mrad.
    max_angle_mrad : float
        The largest angle of a kept pixel centre along either axis, mrad.
    bin_factor : int
        Odd number of pixels per output pixel and axis.

    Returns
    -------
    ndarray, shape (..., ny, nx)
    """
    b = int(bin_factor)
    if b < 1 or b % 2 == 0:
        raise AtomlocInputError(f"detector_bin must be an odd integer >= 1 (got {bin_factor})")
    out = patterns
    for axis, d_mrad in zip((-2, -1), angular_sampling_mrad):
        n_in = out.shape[axis]
        c = n_in // 2
        n = fast_length(2 * int(np.floor(max_angle_mrad / (b * d_mrad) + 1e-9)) + 1)
        lo = c - b * (n // 2) - (b - 1) // 2
        hi = lo + b * n
        if n < 3 or lo < 0 or hi > n_in:
            raise AtomlocInputError(f"max_angle_mrad={max_angle_mrad}: the detector holds only "
                                    f"{min(c, n_in - 1 - c) * d_mrad:.1f} mrad (pixel {d_mrad:.3g} mrad)")
        moved = np.moveaxis(np.take(out, np.arange(lo, hi), axis=axis), axis, -1)
        binned = moved.reshape(*moved.shape[:-1], n, b).sum(axis=-1)
        out = np.moveaxis(binned, -1, axis)
    return out


def apply_dose(fraction: np.ndarray, dose_e_per_A2: float | None, scan_sampling_A, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Take collected fractions of the beam to counts at a dose (Poisson, seeded).

    Each probe position gets ``dose * sy * sx`` electrons.

    Returns
    -------
    data : ndarray of float32
        Counts (the expected counts themselves where ``dose_e_per_A2`` is None).
    clean : ndarray of float32
        Expected counts (``fraction`` where ``dose_e_per_A2`` is None).
    """
    if dose_e_per_A2 is None:
        clean = np.asarray(fraction, dtype=np.float32)
        return clean, clean
    if not (np.isfinite(dose_e_per_A2) and dose_e_per_A2 > 0):
        raise AtomlocInputError(f"dose_e_per_A2 must be > 0 or None (got {dose_e_per_A2!r})")
    sy, sx = scan_sampling_A
    clean = np.asarray(fraction, dtype=np.float64) * (dose_e_per_A2 * sy * sx)
    data = np.random.default_rng(seed).poisson(clean).astype(np.float32)
    return data, clean.astype(np.float32)


def simulate_4dstem(material: str = "MoS2", *, min_size_A: float = 10.0, repeats: tuple[int, int] | None = None,
                    energy_keV: float = 300.0, semiangle_mrad: float = 25.0, defocus_A: float = 0.0,
                    scan_step_A: float = 0.3, max_angle_mrad: float = 60.0, detector_bin: int = 1,
                    dose_e_per_A2: float | None = 1.0e4, wave_sampling_A: float | None = None,
                    slice_thickness_A: float = 1.0, seed: int = 0, n_workers: int | None = None) -> FourDSTEM:
    """abTEM 4D-STEM scan of a perfect crystal, with Poisson noise and the true columns.

    Parameters
    ----------
    material : str
        One of :data:`atomloc.simulate.structures.MATERIALS`.
    min_size_A : float
        The rectangular cell is repeated to at least this size along x and y (MoS2:
        4 x 2 cells, 12.6 x 10.9 Å); the scan covers the whole supercell.
    repeats : (int, int), optional
        Repeats (x, y) of the rectangular cell; overrides ``min_size_A``.
    energy_keV, semiangle_mrad, defocus_A : float
        Beam energy, convergence semi-angle and defocus (abTEM's sign: positive =
        underfocus), keV, mrad, Å.
    scan_step_A : float
        Requested scan step, Å; abTEM rounds the number of positions, the real
        step is ``scan_sampling_A`` of the result.
    max_angle_mrad : float
        Half-width of the kept detector square, mrad (:func:`crop_and_bin`).
    detector_bin : int
        Odd binning of the detector pixels.  abTEM's pixel is ``lambda / cell``
        (1.56 mrad for 12.6 Å at 300 kV) and the window the reconstruction sees is
        ``cell / detector_bin``, which must hold the probe: bin only large cells.
        MoS2 defaults: 64 x 75 pixels (y, x) of 1.80 x 1.56 mrad.
    dose_e_per_A2 : float or None
        Electrons per Å²; each position gets ``dose * sx * sy`` electrons (Poisson).
        None: ``data`` is the expected intensity (no noise).
    wave_sampling_A : float, optional
        Largest sampling of the wave function, Å (the grid is the next FFT-friendly
        size, :func:`atomloc.simulate.abtem_path.fast_gpts`); default: fine enough
        that abTEM's valid (anti-aliased) square holds ``max_angle_mrad``, at most
        0.05 Å.
    slice_thickness_A : float
        Multislice slice thickness, Å.
    seed : int
        Seed of the Poisson noise.
    n_workers : int, optional
        Threads of the multislice (dask's threaded scheduler; default: dask's, every core;
        :func:`atomloc.simulate.abtem_path.abtem_settings`).

    Returns
    -------
    FourDSTEM
        ``data`` (counts) and ``clean`` (expected counts; the collected fraction of the
        beam when ``dose_e_per_A2`` is None) float32 [ny_scan, nx_scan, ky, kx]; the
        calibration; ``truth`` from :func:`truth_columns`; ``attrs`` with material,
        dose, seed, supercell and wave sampling.

    Raises
    ------
    AtomlocInputError
        Naming the parameter: unknown material, non-positive step, energy,
        semi-angle or dose, an even bin, a detector angle beyond the wave's.
    """
    import abtem

    for key, value in (("scan_step_A", scan_step_A), ("energy_keV", energy_keV), ("semiangle_mrad", semiangle_mrad),
                       ("max_angle_mrad", max_angle_mrad), ("slice_thickness_A", slice_thickness_A)):
        if not (np.isfinite(value) and value > 0):
            raise AtomlocInputError(f"simulate_4dstem: {key} must be > 0 (got {value!r})")
    if dose_e_per_A2 is not None and not (np.isfinite(dose_e_per_A2) and dose_e_per_A2 > 0):
        raise AtomlocInputError(f"simulate_4dstem: dose_e_per_A2 must be > 0 or None (got {dose_e_per_A2!r})")
    if int(detector_bin) < 1 or int(detector_bin) % 2 == 0:
        raise AtomlocInputError(f"simulate_4dstem: detector_bin must be an odd integer >= 1 (got {detector_bin})")
    wavelength = electron_wavelength_A(energy_keV)
    if wave_sampling_A is None:
        # abTEM's valid square: half-width (2/3) k_Nyquist / sqrt(2) = 1 / (3 sqrt(2) s).
        wave_sampling_A = min(0.05, 0.97 * wavelength / (3 * np.sqrt(2) * max_angle_mrad * 1e-3))
    atoms = supercell_atoms(material, min_size_A=min_size_A, repeats=repeats)
    extent = tuple(float(v) for v in np.diag(atoms.cell)[:2])  # (x, y)
    gpts = fast_gpts(extent, wave_sampling_A)
    with abtem_settings(n_workers):
        potential = abtem.Potential(atoms, gpts=gpts, slice_thickness=slice_thickness_A, projection="infinite")
        probe = abtem.Probe(energy=energy_keV * 1e3, semiangle_cutoff=semiangle_mrad, defocus=defocus_A)
        scan = abtem.GridScan(start=(0.0, 0.0), end=extent, sampling=scan_step_A)
        detector = abtem.PixelatedDetector(max_angle="valid")
        measured = probe.scan(potential, scan=scan, detectors=detector, lazy=False)
        if getattr(measured, "is_lazy", False):
            measured = measured.compute()
        angular = tuple(float(a) for a in measured.angular_sampling)[::-1]  # (y, x)
        reciprocal = tuple(float(k) for k in measured.sampling)[::-1]
        scan_sampling = tuple(float(s) for s in scan.sampling)[::-1]
        scan_origin = tuple(float(s) for s in scan.start)[::-1]
        # abTEM (x_scan, y_scan, kx, ky) -> (y_scan, x_scan, ky, kx)
        fraction = np.transpose(np.asarray(measured.array, dtype=np.float64), (1, 0, 3, 2))
    for axis in (-2, -1):  # abTEM's patterns are fftshift-ordered; crop_and_bin relies on zero angle at n // 2
        offset = float(measured.axes_metadata[axis].offset)
        n, dk = measured.array.shape[axis], float(measured.axes_metadata[axis].sampling)
        if not np.isclose(offset, -(n // 2) * dk, atol=1e-3 * dk):
            raise RuntimeError(f"abTEM's diffraction axis {axis} has its zero angle off pixel n // 2")
    fraction = crop_and_bin(fraction, angular, max_angle_mrad, int(detector_bin))
    b = int(detector_bin)
    angular = (angular[0] * b, angular[1] * b)
    reciprocal = (reciprocal[0] * b, reciprocal[1] * b)
    shape = fraction.shape[:2]
    data, clean = apply_dose(fraction, dose_e_per_A2, scan_sampling, seed)
    truth = truth_columns(atoms, scan_origin, scan_sampling, shape)
    attrs = {"material": material, "simulator": "abtem_multislice",
             "dose_e_per_A2": float("inf") if dose_e_per_A2 is None else float(dose_e_per_A2), "seed": int(seed),
             "supercell_A": np.array(extent[::-1]), "wave_sampling_A": max(e / g for e, g in zip(extent, gpts)),
             "slice_thickness_A": float(slice_thickness_A), "detector_bin": b,
             "detector_px": np.array(fraction.shape[2:])}
    return FourDSTEM(data=data, clean=clean, scan_sampling_A=scan_sampling, scan_origin_A=scan_origin,
                     reciprocal_sampling_per_A=reciprocal, angular_sampling_mrad=angular, energy_keV=energy_keV,
                     semiangle_mrad=semiangle_mrad, defocus_A=defocus_A, truth=truth, attrs=attrs, name=material)
