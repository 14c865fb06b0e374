"""Crystal structures (built with ASE) and their projected atom columns.

Every periodic structure is an ASE cell whose third vector is the viewing
direction (the zone axis, or the layer normal of a 2-D material) and whose
first two vectors span the projection plane.  Positions here are in Ångström
in the projection plane; :mod:`atomloc.simulate` turns them into pixel
coordinates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from atomloc.core.errors import AtomlocInputError

# 2H transition-metal dichalcogenide monolayers: (metal, chalcogen, a [Å], thickness [Å])
_MX2 = {
    "MoS2": ("Mo", "S", 3.16, 3.19),
    "WS2": ("W", "S", 3.153, 3.14),
}
# 1T''-ReS2 monolayer, P1 (a, b, c in Å; alpha, beta, gamma in degrees) and fractional coordinates.
_RES2_CELLPAR = (6.66991, 6.79281, 7.19998, 91.8263, 104.1480, 118.8126)
_RES2_SITES = (
    ("Re", 0.064232, 0.316166, 0.490846), ("Re", 0.935768, 0.683834, 0.509154),
    ("Re", 0.486745, 0.290893, 0.496785), ("Re", 0.513255, 0.709107, 0.503215),
    ("S", 0.255349, 0.386402, 0.223832), ("S", 0.744651, 0.613598, 0.776168),
    ("S", 0.725892, 0.342743, 0.255420), ("S", 0.274108, 0.657257, 0.744580),
    ("S", 0.220389, 0.106541, 0.708452), ("S", 0.779611, 0.893459, 0.291548),
    ("S", 0.750788, 0.134439, 0.682474), ("S", 0.249212, 0.865561, 0.317526),
)
# Cubic crystals viewed along [110]: in-plane vectors [-110] and [001], viewing direction [110].
_CUT_110 = {"a": (-1, 1, 0), "b": (0, 0, 1), "c": (1, 1, 0)}
METALS = {"Mo", "W", "Re", "Sr", "Ti", "Ni", "Pt", "Au", "Si", "Ga", "Cd", "Ba"}


def _perovskite(a_A=3.905, a_site="Sr"):
    from ase.spacegroup import crystal

    return crystal([a_site, "Ti", "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221,
                   cellpar=[a_A] * 3 + [90] * 3)


def _cubic(symbol, structure, a_A):
    from ase.build import bulk

    return bulk(symbol, structure, a=a_A, cubic=True)


def _zincblende(cation, anion, a_A):
    from ase.build import bulk

    return bulk(f"{cation}{anion}", "zincblende", a=a_A, cubic=True)


def _rocksalt_nio(a_A=4.177):
    from ase.build import bulk

    return bulk("NiO", "rocksalt", a=a_A, cubic=True)


def _rutile_tio2():
    from ase.spacegroup import crystal

    return crystal(["Ti", "O"], basis=[(0, 0, 0), (0.3053, 0.3053, 0)], spacegroup=136,
                   cellpar=[4.594, 4.594, 2.959, 90, 90, 90])


def _res2():
    from ase import Atoms
    from ase.geometry import cellpar_to_cell

    symbols = [site[0] for site in _RES2_SITES]
    frac = np.array([site[1:] for site in _RES2_SITES])
    return Atoms(symbols, scaled_positions=frac, cell=cellpar_to_cell(_RES2_CELLPAR), pbc=True)


def _graphene(formula, a_A):
    from ase.build import graphene

    return graphene(formula=formula, a=a_A, size=(1, 1, 1), vacuum=None)


def _along_110(atoms):
    from ase.build import cut

    return cut(atoms, **_CUT_110)


# name -> builder of the ASE cell viewed along its third vector.
_BUILDERS = {
    "MoS2": lambda: _mx2("MoS2"),
    "MoS2_bilayer": lambda: _mx2_bilayer("MoS2"),
    "WS2": lambda: _mx2("WS2"),
    "ReS2": _res2,
    "graphene": lambda: _graphene("C2", 2.46),
    "hBN": lambda: _graphene("BN", 2.504),
    "SrTiO3_001": _perovskite,
    "SrTiO3_110": lambda: _along_110(_perovskite()),
    "Si_110": lambda: _along_110(_cubic("Si", "diamond", 5.431)),
    "Pt_001": lambda: _cubic("Pt", "fcc", 3.924),
    "Pt_110": lambda: _along_110(_cubic("Pt", "fcc", 3.924)),
    "Au_001": lambda: _cubic("Au", "fcc", 4.078),
    "Au_110": lambda: _along_110(_cubic("Au", "fcc", 4.078)),
    "NiO_001": _rocksalt_nio,
    "TiO2_001": _rutile_tio2,
    # outside every training library: the foreign validation set (benchmarks/foreign.py)
    "GaAs_110": lambda: _along_110(_zincblende("Ga", "As", 5.653)),
    "CdTe_110": lambda: _along_110(_zincblende("Cd", "Te", 6.481)),
    "BaTiO3_110": lambda: _along_110(_perovskite(4.00, "Ba")),
}

MATERIALS = tuple(_BUILDERS)
FOREIGN_MATERIALS = ("GaAs_110", "CdTe_110", "BaTiO3_110")
"""Structures no default or release library draws: the foreign validation set's (benchmarks/foreign.py)."""
# Aperiodic specimen (single Pt atoms and small clusters on amorphous carbon): no unit cell.
AMORPHOUS = "amorphous_C_atoms"


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


def _mx2(material):
    from ase.build import mx2

    metal, chalcogen, a, thickness = _MX2[material]
    return mx2(formula=f"{metal}{chalcogen}2", kind="2H", a=a, thickness=thickness, vacuum=None)


def _mx2_bilayer(material, interlayer_A=6.15):
    """2H-stacked bilayer: the second layer is the first inverted through the midpoint of a metal
    and a chalcogen site, so every projected column holds one metal and two chalcogen atoms
    (the hexagonal projection of bulk 2H along c)."""
    bottom = _mx2(material)
    top = bottom.copy()
    metal = bottom.positions[0, :2]
    chalcogen = bottom.positions[1, :2]
    top.positions[:, :2] = (metal + chalcogen) - bottom.positions[:, :2]
    top.positions[:, 2] += interlayer_A
    bilayer = bottom + top
    bilayer.set_cell([bottom.cell[0], bottom.cell[1], [0.0, 0.0, 2 * interlayer_A]])
    bilayer.pbc = True
    bilayer.wrap()
    return bilayer


def build_atoms(material: str):
    """Build the ASE unit cell of a supported material, viewing direction along z.

    The cell is put in ASE's standard form (first vector along x, second in the
    x-y plane), so the third vector, the viewing direction (zone axis or layer
    normal), is along z whenever it is normal to the first two, as it is for
    every entry of :data:`MATERIALS`.

    Parameters
    ----------
    material : str
        One of :data:`MATERIALS`: 2H monolayers ``MoS2``, ``WS2``; the 2H
        bilayer ``MoS2_bilayer``; 1T'' monolayer ``ReS2``; ``graphene``, ``hBN``; crystals along a zone axis
        ``SrTiO3_001``, ``SrTiO3_110``, ``Si_110``, ``Pt_001``, ``Pt_110``,
        ``Au_001``, ``Au_110``, ``NiO_001``, ``TiO2_001`` (rutile); and, outside every
        training library, ``GaAs_110``, ``CdTe_110`` (zincblende dumbbells), ``BaTiO3_110``.

    Returns
    -------
    ase.Atoms
    """
    if material not in _BUILDERS:
        raise AtomlocInputError(f"material: unknown material {material!r}; expected one of {', '.join(MATERIALS)}")
    atoms = _BUILDERS[material]()
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    return atoms


def column_label(symbols) -> tuple[str, str]:
    """Composition string (e.g. ``"S2"``, ``"MoS2"``) and kind (``"metal"`` / ``"chalcogen"``) of a column.

    Parameters
    ----------
    symbols : iterable of str
        Chemical symbols of the column's atoms.
    """
    counts = Counter(symbols)
    element = "".join(f"{s}{n if n > 1 else ''}" for s, n in sorted(counts.items()))
    return element, "metal" if any(s in METALS for s in counts) else "chalcogen"


def nearest_column_distance_A(cell: "ProjectedCell") -> float:
    """Shortest distance between two projected columns of a periodic structure, Å."""
    xy, _ = tile_columns(cell, -10.0, 10.0, -10.0, 10.0)
    return float(cKDTree(xy).query(xy, k=2)[0][:, 1].min())


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
        label, column_kind = column_label([symbols[i] for i in g])
        element.append(label)
        kind.append(column_kind)
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


def amorphous_carbon_atoms(size_A: float, rng: np.random.Generator, density_per_A2: float = 0.3):
    """Random carbon atoms over a square field (a thin amorphous film, projected); never labelled.

    Parameters
    ----------
    size_A : float
        Side of the field, Å; atoms are drawn over it with a 4 Å margin.
    rng : numpy.random.Generator
    density_per_A2 : float
        Mean projected carbon atoms per Å².

    Returns
    -------
    xy_A : ndarray, shape (n, 2)
        Positions, Å.
    atomic_numbers : list of tuple of int
        One ``(6,)`` per atom.
    labelled : ndarray of bool, shape (n,)
        All False: the film is background, not a target.
    """
    n = rng.poisson(density_per_A2 * (size_A + 8) ** 2)
    xy = rng.uniform(-4, size_A + 4, size=(n, 2))
    return xy, [(6,)] * n, np.zeros(n, dtype=bool)


def single_atoms_on_carbon(size_A: float, rng: np.random.Generator, min_dist_A: float = 2.6):
    """Single Pt atoms and small clusters (2-5 atoms, 2.7 Å apart) on amorphous carbon.

    An aperiodic specimen (no lattice for spacing-based methods to lean on).

    Parameters
    ----------
    size_A : float
        Side of the square field, Å.
    rng : numpy.random.Generator
    min_dist_A : float
        Smallest projected distance between any two Pt atoms, Å.

    Returns
    -------
    xy_A, atomic_numbers, labelled
        As :func:`amorphous_carbon_atoms`; the Pt atoms come first and are labelled.
    """
    n_sites = max(3, int(rng.poisson(size_A ** 2 / 60)))
    pts: list[np.ndarray] = []
    tries = 0
    while len(pts) < n_sites and tries < 50 * n_sites:
        tries += 1
        centre = rng.uniform(2, size_A - 2, size=2)
        k = 1 if rng.uniform() < 0.6 else int(rng.integers(2, 6))
        cluster = [centre]
        for _ in range(k - 1):
            step = 2.7 * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
            cluster.append(cluster[int(rng.integers(len(cluster)))] + step)
        cluster = np.array(cluster)
        allpts = np.array(pts) if pts else np.empty((0, 2))
        if len(allpts) and cKDTree(allpts).query(cluster)[0].min() < min_dist_A:
            continue
        if len(cluster) > 1 and cKDTree(cluster).query(cluster, k=2)[0][:, 1].min() < min_dist_A:
            continue
        pts.extend(cluster)
    xy = np.array(pts)
    cxy, cz, clab = amorphous_carbon_atoms(size_A, rng)
    return np.vstack([xy, cxy]), [(78,)] * len(xy) + cz, np.concatenate([np.ones(len(xy), bool), clab])
