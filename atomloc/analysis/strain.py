"""Strain from column positions and by geometric phase analysis (GPA).

Conventions
-----------
Positions and lattice vectors are in pixels, ``x`` = column index, ``y`` = row
index.  A lattice is a (2, 2) array whose rows are the vectors ``a`` and ``b``
(x, y).  The deformation gradient ``F`` maps reference lattice vectors to the
measured ones (``d = F @ d_ref``); with the displacement gradient
``D = F - I`` (``D[i, j] = du_i / dx_j``) the small strain is ``eps = sym(D)``,
the rotation ``omega = (D[1, 0] - D[0, 1]) / 2`` (radians, counter-clockwise in
the x-y frame) and the hydrostatic normal strain ``(eps_xx + eps_yy) / 2``.
Both routes, positions and GPA, report these same quantities.

GPA (Hÿtch, Snoeck & Kilaas, Ultramicroscopy 74 (1998) 131) is written here: no
maintained Python library implements it.  The phase gradient is taken without
unwrapping as ``Im(conj(e^{iP}) grad e^{iP})``.

The applied strain fields of :func:`applied_strain` are what the simulator
imposes on a specimen (uniform, linear gradient, Gaussian bulge), with their
exact strain at every column, so that both routes can be scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from atomloc.core.errors import AtomlocInputError
from atomloc.core.geometry import parabolic_vertex

STRAIN_COLUMNS = ("exx", "eyy", "exy", "omega")


def _translation_fraction(tree: cKDTree, xy: np.ndarray, v: np.ndarray, tol_px: float) -> float:
    d, _ = tree.query(xy + v, distance_upper_bound=tol_px)
    return float(np.mean(np.isfinite(d)))


def lattice_vectors_from_positions(xy: np.ndarray, min_fraction: float = 0.7, tol_frac: float = 0.2,
                                   max_multiple: float = 4.0) -> np.ndarray:
    """Estimate the two shortest lattice translations of a set of column positions.

    Candidates are the displacement vectors from every point to its neighbours
    within ``max_multiple`` x the nearest-neighbour spacing, merged when closer
    than ``tol_frac`` x that spacing.  A candidate is a lattice translation if
    at least ``min_fraction`` of the points (away from the border) have a
    partner at ``p + v``: vectors inside a multi-column basis (e.g. Mo to S2 in
    MoS2) fail this test.  The shortest translation is ``a``; ``b`` is the
    shortest one not parallel to it, chosen so that ``a x b > 0``.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
        Positions (x, y), pixels; at least 10.

    Returns
    -------
    ndarray, shape (2, 2)
        Rows ``a`` and ``b``, pixels.  Each is the mean of the matched
        displacements (sub-pixel).

    Raises
    ------
    AtomlocInputError
        If fewer than two non-parallel translations are found (aperiodic input).
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy) < 10:
        raise AtomlocInputError(f"lattice: need at least 10 positions, got {len(xy)}")
    tree = cKDTree(xy)
    d, _ = tree.query(xy, k=2)
    spacing = float(np.median(d[:, 1]))
    tol = tol_frac * spacing
    # Candidate displacements from a central subset (fewer border effects, bounded cost).
    centre = np.median(xy, axis=0)
    order = np.argsort(np.hypot(*(xy - centre).T))[: min(len(xy), 400)]
    pairs = tree.query_ball_point(xy[order], max_multiple * spacing)
    vecs = np.concatenate([xy[np.asarray(p, dtype=np.int64)] - xy[i] for i, p in zip(order, pairs)])
    vecs = vecs[np.hypot(*vecs.T) > tol]
    # Greedy clustering of displacements, most populated first.
    vtree = cKDTree(vecs)
    counts = np.array([len(h) for h in vtree.query_ball_point(vecs, tol)])
    taken = np.zeros(len(vecs), bool)
    clusters = []
    for i in np.argsort(-counts, kind="stable"):
        if taken[i]:
            continue
        members = [j for j in vtree.query_ball_point(vecs[i], tol) if not taken[j]]
        taken[members] = True
        if len(members) >= 3:
            clusters.append(vecs[members].mean(axis=0))
    inner = xy[np.all((xy > xy.min(axis=0) + max_multiple * spacing) & (xy < xy.max(axis=0) - max_multiple * spacing),
                      axis=1)]
    probe = inner if len(inner) >= 10 else xy
    lattice = [v for v in sorted(clusters, key=lambda v: float(np.hypot(*v)))
               if _translation_fraction(tree, probe, v, tol) >= min_fraction]
    if not lattice:
        raise AtomlocInputError("lattice: no lattice translation found in the positions (aperiodic?)")
    a = lattice[0]
    for v in lattice[1:]:
        cross = a[0] * v[1] - a[1] * v[0]
        if abs(cross) > 0.2 * np.hypot(*a) * np.hypot(*v):
            b = v if cross > 0 else -v
            return np.array([a, b])
    raise AtomlocInputError("lattice: only one lattice direction found in the positions")


def neighbour_displacements(xy: np.ndarray, lattice_px: np.ndarray, tol_frac: float = 0.25) -> np.ndarray:
    """Displacements from each point to its neighbours at ``+a, +b, -a, -b``.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
    lattice_px : ndarray, shape (2, 2)
        Reference lattice, rows ``a`` and ``b`` (pixels).
    tol_frac : float
        A neighbour is the nearest point within ``tol_frac`` x ``min(|a|, |b|)``
        of the expected site.

    Returns
    -------
    ndarray, shape (n, 4, 2)
        Measured displacement to each of the four neighbours (NaN where none).
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    lattice = np.asarray(lattice_px, dtype=np.float64)
    refs = np.array([lattice[0], lattice[1], -lattice[0], -lattice[1]])
    tol = tol_frac * float(min(np.hypot(*lattice[0]), np.hypot(*lattice[1])))
    out = np.full((len(xy), 4, 2), np.nan)
    if len(xy) == 0:
        return out
    tree = cKDTree(xy)
    for k, v in enumerate(refs):
        d, j = tree.query(xy + v, distance_upper_bound=tol)
        ok = np.isfinite(d)
        out[ok, k] = xy[j[ok]] - xy[ok]
    return out


def deformation_gradients(xy: np.ndarray, lattice_px: np.ndarray, tol_frac: float = 0.25) -> np.ndarray:
    """Least-squares deformation gradient ``F`` at each point from its ±a, ±b neighbours.

    ``F`` minimises ``sum_k |d_k - F r_k|^2`` over the neighbours found
    (:func:`neighbour_displacements`); points without at least one ``a`` and
    one ``b`` neighbour get NaN.

    Returns
    -------
    ndarray, shape (n, 2, 2)
    """
    lattice = np.asarray(lattice_px, dtype=np.float64)
    refs = np.array([lattice[0], lattice[1], -lattice[0], -lattice[1]])
    disp = neighbour_displacements(xy, lattice, tol_frac)
    found = np.isfinite(disp[..., 0])
    w = found.astype(np.float64)
    d = np.where(found[..., None], disp, 0.0)
    # F = (sum w d r^T)(sum w r r^T)^-1, batched.
    dr = np.einsum("nk,nki,kj->nij", w, d, refs)
    rr = np.einsum("nk,ki,kj->nij", w, refs, refs)
    enough = (found[:, [0, 2]].any(axis=1)) & (found[:, [1, 3]].any(axis=1))
    out = np.full((len(w), 2, 2), np.nan)
    if enough.any():
        out[enough] = dr[enough] @ np.linalg.inv(rr[enough])
    return out


def strain_components(displacement_gradient: np.ndarray) -> dict:
    """``exx, eyy, exy, omega, hydrostatic`` from displacement gradients ``D[..., i, j] = du_i/dx_j``."""
    D = np.asarray(displacement_gradient, dtype=np.float64)
    exx, eyy = D[..., 0, 0], D[..., 1, 1]
    return {"exx": exx, "eyy": eyy, "exy": 0.5 * (D[..., 0, 1] + D[..., 1, 0]),
            "omega": 0.5 * (D[..., 1, 0] - D[..., 0, 1]), "hydrostatic": 0.5 * (exx + eyy)}


def reference_lattice(xy: np.ndarray, lattice_guess_px: np.ndarray, region=None, tol_frac: float = 0.25
                      ) -> np.ndarray:
    """Refine a lattice as the median measured ±a, ±b displacement over a reference region.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
    lattice_guess_px : ndarray, shape (2, 2)
    region : ndarray of bool, shape (n,), optional
        Points of the reference region (default: all).
    """
    disp = neighbour_displacements(xy, lattice_guess_px, tol_frac)
    if region is not None:
        disp = disp[np.asarray(region, bool)]
    a = np.concatenate([disp[:, 0], -disp[:, 2]])
    b = np.concatenate([disp[:, 1], -disp[:, 3]])
    a, b = a[np.isfinite(a[:, 0])], b[np.isfinite(b[:, 0])]
    if len(a) == 0 or len(b) == 0:
        raise AtomlocInputError("strain: no ±a / ±b neighbours in the reference region")
    return np.array([np.median(a, axis=0), np.median(b, axis=0)])


def strain_from_positions(xy: np.ndarray, lattice_px: np.ndarray, tol_frac: float = 0.25) -> pd.DataFrame:
    """Strain at every column from its neighbours against a reference lattice.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
        Column positions, pixels.  For a multi-column basis every sublattice
        is handled alike: neighbours are sought at ``p ± a`` and ``p ± b``.
    lattice_px : ndarray, shape (2, 2)
        Reference (unstrained) lattice, rows ``a`` and ``b``, pixels.

    Returns
    -------
    DataFrame
        ``x, y, exx, eyy, exy, omega, hydrostatic`` (NaN where a column has
        too few neighbours).
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    F = deformation_gradients(xy, lattice_px, tol_frac)
    comps = strain_components(F - np.eye(2))
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], **comps})


def lattice_parameter_precision(xy: np.ndarray, lattice_px: np.ndarray, pixel_size_pm: float,
                                tol_frac: float = 0.25) -> tuple[float, float, int, int]:
    """Lattice-parameter precision: standard deviation of the measured |a| and |b| (pm).

    Every column with a neighbour at ``p + a`` (``p + b``) contributes one
    measurement of ``|a|`` (``|b|``), as in the AtomSegNet paper's precision
    test on Si [110].

    Returns
    -------
    std_a_pm, std_b_pm : float
        ``ddof=1``; NaN with fewer than 2 measurements.
    n_a, n_b : int
    """
    disp = neighbour_displacements(xy, lattice_px, tol_frac)
    out = []
    for k in (0, 1):
        d = disp[:, k]
        d = d[np.isfinite(d[:, 0])]
        length = np.hypot(*d.T) * pixel_size_pm
        out.append((float(np.std(length, ddof=1)) if len(length) > 1 else float("nan"), len(length)))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def reciprocal_vectors(lattice_px: np.ndarray) -> np.ndarray:
    """Reciprocal vectors (rows, cycles per pixel) with ``g_i . a_j = delta_ij``."""
    return np.linalg.inv(np.asarray(lattice_px, dtype=np.float64)).T


def refine_bragg_spot(image: np.ndarray, g_guess: np.ndarray, search_frac: float = 0.2) -> np.ndarray:
    """Sub-pixel position (cycles per pixel) of the Fourier peak nearest ``g_guess``.

    The brightest |FFT| sample (Hann-windowed image) within ``search_frac`` x
    ``|g_guess|`` of the guess is refined by a parabola through the logarithm
    of its neighbours along each axis.
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    spec = np.abs(np.fft.fft2((img - img.mean()) * win))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    g = np.asarray(g_guess, dtype=np.float64)
    near = np.hypot(fx - g[0], fy - g[1]) <= search_frac * np.hypot(*g)
    if not near.any():
        raise AtomlocInputError("gpa: the Bragg spot search window holds no Fourier sample; image too small")
    iy, ix = np.unravel_index(np.argmax(np.where(near, spec, -np.inf)), spec.shape)

    def log_vertex(m, c, p):
        return parabolic_vertex(*np.log(np.maximum([m, c, p], 1e-300)))

    ox = log_vertex(spec[iy, (ix - 1) % w], spec[iy, ix], spec[iy, (ix + 1) % w])
    oy = log_vertex(spec[(iy - 1) % h, ix], spec[iy, ix], spec[(iy + 1) % h, ix])
    return np.array([fx[0, ix] + ox / w, fy[iy, 0] + oy / h])


def gpa_phase(image: np.ndarray, g: np.ndarray, mask_sigma: float) -> np.ndarray:
    """Complex Bragg image ``exp(i P_g)`` with the carrier ``2 pi g.r`` removed.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    g : (float, float)
        Bragg vector (x, y), cycles per pixel.
    mask_sigma : float
        Gaussian mask sigma around ``g``, cycles per pixel (sets the spatial
        resolution, about ``1 / (2 pi mask_sigma)`` pixels).

    Returns
    -------
    ndarray of complex, shape (H, W), unit modulus (zero where the Bragg amplitude vanishes).
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    mask = np.exp(-((fx - g[0]) ** 2 + (fy - g[1]) ** 2) / (2.0 * mask_sigma ** 2))
    hg = np.fft.ifft2(np.fft.fft2(img) * mask)
    yy, xx = np.mgrid[0:h, 0:w]
    hg = hg * np.exp(-2j * np.pi * (g[0] * xx + g[1] * yy))
    amp = np.abs(hg)
    return np.divide(hg, amp, out=np.zeros_like(hg), where=amp > 0)


def phase_gradient(e_ip: np.ndarray) -> np.ndarray:
    """``grad P`` (radians per pixel) as ``Im(conj(e^{iP}) grad e^{iP})``: no unwrapping.

    Returns
    -------
    ndarray, shape (H, W, 2)
        (d/dx, d/dy).
    """
    gy, gx = np.gradient(e_ip)
    return np.stack([np.imag(np.conj(e_ip) * gx), np.imag(np.conj(e_ip) * gy)], axis=-1)


def gpa_strain(image: np.ndarray, lattice_px: np.ndarray, mask_sigma_frac: float = 0.25,
               reference_region=None, refine: bool = True) -> dict:
    """Strain maps by geometric phase analysis.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    lattice_px : ndarray, shape (2, 2)
        Approximate lattice (rows ``a``, ``b``, pixels): its reciprocal vectors
        are the Bragg spots used (refined on the image when ``refine``).
    mask_sigma_frac : float
        Gaussian mask sigma as a fraction of the shorter ``|g|``.
    reference_region : ndarray of bool, shape (H, W), optional
        Region defined as unstrained: the mean displacement gradient there is
        removed (equivalent to refining ``g`` on it).  Default: no correction,
        i.e. the reference is the given (or refined) lattice itself.
    refine : bool
        Refine the Bragg spots to the image's Fourier peaks first.

    Returns
    -------
    dict of ndarray (H, W)
        ``exx, eyy, exy, omega, hydrostatic`` and ``g`` (2, 2), the Bragg
        vectors used (cycles per pixel).

    References
    ----------
    .. [1] M. J. Hÿtch, E. Snoeck, R. Kilaas, "Quantitative measurement of displacement and
       strain fields from HREM micrographs", Ultramicroscopy 74, 131-146 (1998).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or not np.all(np.isfinite(img)) or np.ptp(img) == 0:
        raise AtomlocInputError("gpa: image must be a finite, non-constant 2-D array")
    G = reciprocal_vectors(lattice_px)
    if refine:
        G = np.array([refine_bragg_spot(img, g) for g in G])
    sigma = mask_sigma_frac * float(min(np.hypot(*G[0]), np.hypot(*G[1])))
    grads = np.stack([phase_gradient(gpa_phase(img, g, sigma)) for g in G], axis=-2)  # (H, W, 2 g, 2 dir)
    # dP_k/dx_j = -2 pi sum_i G[k, i] D[i, j]  =>  D = -(1 / 2 pi) G^-1 gradP
    D = -np.einsum("ik,hwkj->hwij", np.linalg.inv(G), grads) / (2.0 * np.pi)
    if reference_region is not None:
        region = np.asarray(reference_region, bool)
        if region.shape != img.shape or not region.any():
            raise AtomlocInputError("gpa: reference_region must be a non-empty boolean mask of the image's shape")
        # A uniform D0 in the reference means the true lattice there is (I + D0) applied to the assumed one:
        # measure relative to it, D' = (I + D)(I + D0)^-1 - I.
        D0 = D[region].mean(axis=0)
        D = (np.eye(2) + D) @ np.linalg.inv(np.eye(2) + D0) - np.eye(2)
    return {**strain_components(D), "g": G}


def sample_map(field: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear sample of a map at (x, y) pixel positions (NaN outside)."""
    from scipy.ndimage import map_coordinates

    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    out = map_coordinates(np.asarray(field, dtype=np.float64), [xy[:, 1], xy[:, 0]], order=1, mode="constant",
                          cval=np.nan)
    return out
