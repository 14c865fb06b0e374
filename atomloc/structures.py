"""Crystal structures (built with ASE) and their projected atom columns.

Positions here are in Ångström in the projection plane; :mod:`atomloc.simulate`
turns them into pixel coordinates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from atomloc.errors import AtomlocInputError

# 2H transition-metal dichalcogenide monolayers: (metal, chalcogen, a [Å], thickness [Å])
_MX2 = {
    "MoS2": ("Mo", "S", 3.16, 3.19),
    "WS2": ("W", "S", 3.153, 3.14),
}
METALS = {"Mo", "W", "Re"}

MATERIALS = tuple(_MX2)


@dataclass(frozen=True)
class ProjectedCell:
    """Columns of one 2-D unit cell projected along z.

    Attributes
    ----------
    cell_A : ndarray, shape (2, 2)
        In-plane lattice vectors as rows, Å.
    xy_A : ndarray, shape (m, 2)
        Column positions (x, y) in Å.
    element : ndarray of str, shape (m,)
        Column composition, e.g. ``"Mo"`` or ``"S2"``.
    kind : ndarray of str, shape (m,)
        ``"metal"`` or ``"chalcogen"``.
    atomic_numbers : tuple of tuple of int
        Atomic numbers of the atoms in each column.
    """

    cell_A: np.ndarray
    xy_A: np.ndarray
    element: np.ndarray
    kind: np.ndarray
    atomic_numbers: tuple

    def weights(self, z_exponent: float) -> np.ndarray:
        """Column weights sum(Z**z_exponent) over the atoms of each column."""
        return np.array([sum(z ** z_exponent for z in zs) for zs in self.atomic_numbers])


def build_atoms(material: str):
    """Build the ASE unit cell of a supported material.

    Parameters
    ----------
    material : str
        One of :data:`MATERIALS`.

    Returns
    -------
    ase.Atoms
    """
    from ase.build import mx2

    if material not in _MX2:
        raise AtomlocInputError(f"material: unknown material {material!r}; expected one of {', '.join(MATERIALS)}")
    metal, chalcogen, a, thickness = _MX2[material]
    return mx2(formula=f"{metal}{chalcogen}2", kind="2H", a=a, thickness=thickness, vacuum=None)


def project_columns(atoms, tol_A: float = 0.05) -> ProjectedCell:
    """Group the atoms of a cell into columns along z.

    Atoms whose (x, y) positions, wrapped into the cell, agree within ``tol_A``
    form one column.
    """
    cell2 = np.asarray(atoms.cell)[:2, :2]
    frac = np.linalg.solve(cell2.T, atoms.positions[:, :2].T).T % 1.0
    frac[np.isclose(frac, 1.0, atol=1e-9)] = 0.0
    xy = frac @ cell2
    symbols = atoms.get_chemical_symbols()
    numbers = atoms.get_atomic_numbers()
    groups: list[list[int]] = []
    for i, p in enumerate(xy):
        for g in groups:
            if np.hypot(*(xy[g[0]] - p)) < tol_A:
                g.append(i)
                break
        else:
            groups.append([i])
    col_xy, element, kind, zs = [], [], [], []
    for g in groups:
        col_xy.append(xy[g].mean(axis=0))
        counts = Counter(symbols[i] for i in g)
        element.append("".join(f"{s}{n if n > 1 else ''}" for s, n in sorted(counts.items())))
        kind.append("metal" if any(s in METALS for s in counts) else "chalcogen")
        zs.append(tuple(int(numbers[i]) for i in g))
    return ProjectedCell(cell_A=cell2, xy_A=np.array(col_xy), element=np.array(element),
                         kind=np.array(kind), atomic_numbers=tuple(zs))


def tile_columns(cell: ProjectedCell, xmin_A: float, xmax_A: float, ymin_A: float, ymax_A: float,
                 rotation_deg: float = 0.0, origin_A=(0.0, 0.0)):
    """Tile a projected cell over a rectangle.

    The lattice is rotated by ``rotation_deg`` (counter-clockwise in the x-y
    plane) about ``origin_A`` and translated so that the cell origin sits at
    ``origin_A``.

    Returns
    -------
    xy_A : ndarray, shape (n, 2)
        Column positions inside the rectangle, Å.
    index : ndarray of int, shape (n,)
        Index into the cell's columns (element, kind, weight).
    """
    theta = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    vecs = cell.cell_A @ rot.T  # rotated lattice vectors as rows
    corners = np.array([[xmin_A, ymin_A], [xmax_A, ymin_A], [xmin_A, ymax_A], [xmax_A, ymax_A]]) - np.asarray(origin_A)
    frac = np.linalg.solve(vecs.T, corners.T).T
    lo = np.floor(frac.min(axis=0)) - 1
    hi = np.ceil(frac.max(axis=0)) + 1
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    shifts = np.column_stack([ii.ravel(), jj.ravel()]) @ vecs
    basis = cell.xy_A @ rot.T
    xy = (shifts[:, None, :] + basis[None, :, :]).reshape(-1, 2) + np.asarray(origin_A)
    index = np.tile(np.arange(len(basis)), len(shifts))
    inside = (xy[:, 0] >= xmin_A) & (xy[:, 0] < xmax_A) & (xy[:, 1] >= ymin_A) & (xy[:, 1] < ymax_A)
    return xy[inside], index[inside]
