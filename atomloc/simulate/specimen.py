"""The specimen of a simulated series: projected columns with defects, and contamination.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from atomloc.simulate.spec import SeriesSpec
from atomloc.simulate.structures import (
    AMORPHOUS,
    METALS,
    build_atoms,
    column_label,
    nearest_column_distance_A,
    project_columns,
    single_atoms_on_carbon,
    tile_columns,
)


def _column_label(numbers) -> tuple[str, str]:
    from ase.data import chemical_symbols

    return column_label(chemical_symbols[z] for z in numbers)


def _is_metal(z: int) -> bool:
    from ase.data import chemical_symbols

    return chemical_symbols[z] in METALS


def specimen_columns(spec: SeriesSpec, xmin_A: float, xmax_A: float, ymin_A: float, ymax_A: float,
                     fov_A: tuple, rng: np.random.Generator) -> dict:
    """The projected columns of a series' specimen over a rectangle, defects included.

    Parameters
    ----------
    spec : SeriesSpec
        Material, rotation and defect settings.
    xmin_A, xmax_A, ymin_A, ymax_A : float
        Rectangle to fill, Å (the field of view plus a margin).
    fov_A : (float, float)
        Width and height of the field of view, Å (voids and the grain are
        placed inside it).
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``xy_A`` (m, 2) positions, Å; ``atomic_numbers`` list of tuples;
        ``labelled`` (m,) bool (False for the amorphous-carbon film);
        ``occupancy`` (m,) atoms present / atoms of the pristine column;
        ``reference_weight``: the weight (sum of Z**n) of the heaviest
        pristine column type; ``origin_A`` (periodic specimens): where the
        lattice origin was put, Å.
    """
    n = spec.z_exponent
    if spec.material == AMORPHOUS:
        size = max(xmax_A - xmin_A, ymax_A - ymin_A)
        xy, zs, labelled = single_atoms_on_carbon(size, rng)
        xy = xy + np.array([xmin_A, ymin_A])
        return {"xy_A": xy, "atomic_numbers": list(zs), "labelled": labelled, "occupancy": np.ones(len(xy)),
                "reference_weight": 78.0 ** n}
    cell = project_columns(build_atoms(spec.material))
    origin = rng.uniform(0, 1, size=2) @ cell.cell_A
    xy, index = tile_columns(cell, xmin_A, xmax_A, ymin_A, ymax_A, spec.rotation_deg, origin)
    zs = [cell.atomic_numbers[i] for i in index]
    if spec.grain_radius_A > 0:
        centre = rng.uniform(0.25, 0.75, size=2) * np.asarray(fov_A)
        keep = np.hypot(*(xy - centre).T) > spec.grain_radius_A
        g_origin = centre + rng.uniform(0, 1, size=2) @ cell.cell_A
        gxy, gindex = tile_columns(cell, *(centre[0] + np.array([-1, 1]) * spec.grain_radius_A),
                                   *(centre[1] + np.array([-1, 1]) * spec.grain_radius_A),
                                   spec.rotation_deg + spec.grain_rotation_deg, g_origin)
        inside = np.hypot(*(gxy - centre).T) <= spec.grain_radius_A
        gxy, gindex = gxy[inside], gindex[inside]
        # No two columns closer than 0.8 x the shortest column distance across the boundary.
        from scipy.spatial import cKDTree

        nn = nearest_column_distance_A(cell)
        if keep.any() and len(gxy):
            gap = cKDTree(xy[keep]).query(gxy)[0] >= 0.8 * nn
            gxy, gindex = gxy[gap], gindex[gap]
        xy = np.vstack([xy[keep], gxy])
        zs = [z for z, k in zip(zs, keep) if k] + [cell.atomic_numbers[i] for i in gindex]
    for _ in range(int(spec.void_count)):
        centre = rng.uniform(0, 1, size=2) * np.asarray(fov_A)
        radius = rng.uniform(*spec.void_radius_A)
        keep = np.hypot(*(xy - centre).T) > radius
        xy = xy[keep]
        zs = [z for z, k in zip(zs, keep) if k]
    dopant = 0
    if spec.dopant_element:
        from ase.data import atomic_numbers

        dopant = atomic_numbers[spec.dopant_element]
    new_xy, new_zs, occupancy = [], [], []
    for p, col in zip(xy, zs):
        present = []
        for z in col:
            metal = _is_metal(z)
            if rng.uniform() < (spec.metal_vacancy_rate if metal else spec.chalcogen_vacancy_rate):
                continue
            if metal and dopant and rng.uniform() < spec.dopant_rate:
                z = dopant
            present.append(z)
        if present:
            new_xy.append(p)
            new_zs.append(tuple(present))
            occupancy.append(len(present) / len(col))
    return {"xy_A": np.array(new_xy).reshape(-1, 2), "atomic_numbers": new_zs,
            "labelled": np.ones(len(new_xy), dtype=bool), "occupancy": np.array(occupancy),
            "reference_weight": float(cell.weights(n).max()), "origin_A": origin}


def contamination_field(shape_A: tuple, sampling_A: float, n_blobs: int, fraction: float, radius_A: tuple,
                        rng: np.random.Generator) -> np.ndarray:
    """Contamination on the specimen: bright diffuse blobs plus a low-frequency random field.

    Parameters
    ----------
    shape_A : (float, float)
        Height and width of the area, Å.
    sampling_A : float
        Sampling of the returned grid, Å.
    n_blobs : int
        Number of Gaussian blobs (uniform centres, sigma uniform in ``radius_A``).
    fraction : float
        Collected fraction at a blob's centre, and the peak-to-peak amplitude of
        the random field (a Gaussian-filtered white noise, correlation length a
        quarter of the area).
    radius_A : (float, float)
        Range of the blob sigma, Å.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (ceil(height / sampling) + 1, ceil(width / sampling) + 1)
        Collected fraction, >= 0; row = y, column = x, sample (0, 0) at (0, 0).
    """
    ny, nx = (int(np.ceil(s / sampling_A)) + 1 for s in shape_A)
    yy, xx = np.mgrid[0:ny, 0:nx] * sampling_A
    out = np.zeros((ny, nx))
    for _ in range(int(n_blobs)):
        cy, cx = rng.uniform(0, shape_A[0]), rng.uniform(0, shape_A[1])
        sigma = rng.uniform(*radius_A)
        out += fraction * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
    noise = ndimage.gaussian_filter(rng.standard_normal((ny, nx)), sigma=max(ny, nx) / 4, mode="reflect")
    out += fraction * (noise - noise.min()) / max(float(np.ptp(noise)), 1e-12)
    return out
