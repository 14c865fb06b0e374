"""Simulated HAADF-STEM image series with known column positions.

The linear imaging model: every projected column is a point weighted by the sum
of Z**n over its atoms, at its exact sub-pixel position, blurred by a Gaussian
(thermal smearing ``column_sigma_A``, and the incoherent source of FWHM
``source_size_A``) and convolved with the probe intensity |psi|^2 computed by
abTEM (energy, convergence semi-angle, and per frame a random defocus and
2-fold astigmatism).  The point-spread function is computed on a grid of at
most 0.05 Å sampling, integrated over the output pixel (binning), and then
evaluated at every pixel's scan position, so the scan physics acts while
sampling, not as a post-warp.  Frames of one series differ by a random rigid
drift (a random walk), a slow non-rigid drift within each frame (row-wise
shifts along the slow-scan axis: linear creep plus a smooth random field),
scan-line jitter (the TEMImageNet model), a log-uniform random dose and the
probe.  Counts are Poisson at the frame's dose through the detector's
collection fraction, plus Gaussian read noise; contamination (bright diffuse
blobs and a low-frequency field on the specimen) and a linear background ramp
(in scan coordinates) are optional.  Defects (vacancies, substitutional
dopants, voids, a rotated grain) and the aperiodic failure case (single Pt
atoms and clusters on amorphous carbon) are built into the specimen.

``simulator: prism`` or ``multislice`` replaces the linear image of a perfect
crystal by abTEM's PRISM or multislice HAADF image of one (periodic) cell, used
to validate the linear model (:func:`abtem_cell_image`).

Coordinates: pixel (row i, column j) samples the specimen at
(x, y) = (j, i) * pixel size; truth positions are returned in pixels with the
same convention (x = column index, centre of pixel (0, 0) at (0.0, 0.0)).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from atomloc.core.errors import AtomlocInputError
from atomloc.core.geometry import parabolic_vertex, rotated_lattice_px
from atomloc.core.optics import FWHM_PER_SIGMA
from atomloc.io.series import Series, Truth
from atomloc.simulate.abtem_path import abtem_cell_images, sample_cell_image
from atomloc.simulate.probe import frame_psf
from atomloc.simulate.render import distorted_positions, render_psf, scan_distortion, scan_jitter
from atomloc.simulate.spec import SeriesSpec
from atomloc.simulate.specimen import _column_label, contamination_field, specimen_columns
from atomloc.simulate.strain_fields import applied_strain
from atomloc.simulate.structures import AMORPHOUS, build_atoms, project_columns


def simulate_series(spec: SeriesSpec, return_clean: bool = False, name: str = "series") -> Series:
    """Render a series of frames of one region.

    Parameters
    ----------
    spec : SeriesSpec
    return_clean : bool
        Also keep ``clean``: the expected counts of each frame (no Poisson or
        read noise).
    name : str
        The dataset's name.

    Returns
    -------
    Series
        ``frames`` float32 [n, H, W] in detector counts; per-frame ``arrays``
        ``dose_e_per_A2`` [n], ``defocus_nm``, ``astigmatism_nm``,
        ``astigmatism_angle_deg`` [n], ``drift_px`` [n, 2] true rigid drift (x, y)
        in pixels, frame 0 at (0, 0);
        ``scan_shift_px`` [n, H, 2] the smooth within-frame row-wise scan
        distortion (zero mean per frame), which the truth follows;
        ``scan_jitter_px`` [n, H, 2] the scan-line jitter (zero mean per
        frame), applied to the image only: it is noise around the truth;
        ``truth`` with ``x``, ``y`` [n, m] column positions in each frame's pixels,
        ``element``, ``kind`` and the extras ``weight`` and ``occupancy`` [m],
        ``peak_offset_px`` [n, m, 2], the offset of the noise-free image's peak
        from each truth position (:func:`noise_free_peak_offsets`, NaN where
        none), and ``strain`` [m, 3] the applied ``eps_xx, eps_yy, eps_xy`` at
        each column; ``attrs`` (crystals: ``lattice_px``,
        the unstrained lattice, rows a and b in pixels).
    """
    spec.check()
    rng = np.random.default_rng(spec.seed)
    h, w = spec.shape_px
    px_A = spec.pixel_size_pm / 100.0
    cond = _frame_conditions(spec, rng)
    drift_px, scan, jitter = cond["drift_px"], cond["scan_shift_px"], cond["scan_jitter_px"]

    psf0, ov = frame_psf(spec)
    reach_px = psf0.shape[0] / 2 / ov
    margin_A = (np.abs(drift_px).max() + np.abs(scan).max() + np.abs(jitter).max() + reach_px + 2) * px_A
    fov_A = (w * px_A, h * px_A)
    specimen = specimen_columns(spec, -margin_A, fov_A[0] + margin_A, -margin_A, fov_A[1] + margin_A, fov_A, rng)
    displacement_A, true_strain = applied_strain(specimen["xy_A"], (fov_A[0] / 2, fov_A[1] / 2), spec.strain_field,
                                                 spec.strain_magnitude, spec.strain_radius_A, fov_A[0])
    xy_A = specimen["xy_A"] + displacement_A
    weight = np.array([sum(z ** spec.z_exponent for z in col) for col in specimen["atomic_numbers"]])
    # In focus, the heaviest pristine column peaks at collection_fraction.
    amplitude = spec.collection_fraction * weight / specimen["reference_weight"] / psf0.max()
    contamination = _contamination(spec, fov_A, margin_A, rng)
    ramp = _ramp(spec, rng)
    cell_images = None
    if spec.simulator != "linear":
        cell_images = abtem_cell_images(spec.material, spec.simulator, spec.energy_keV, spec.semiangle_mrad,
                                        10.0 * cond["defocus_nm"])

    x_rigid = xy_A[:, 0][None, :] / px_A + drift_px[:, 0:1]
    y_rigid = xy_A[:, 1][None, :] / px_A + drift_px[:, 1:2]
    frames = np.empty((spec.n_frames, h, w), dtype=np.float32)
    expected_frames = np.empty((spec.n_frames, h, w), dtype=np.float64)
    for k in range(spec.n_frames):
        row_shift = scan[k] + jitter[k]
        if cell_images is None:
            defocus, astig = cond["defocus_nm"][k], cond["astigmatism_nm"][k]
            psf = psf0 if (defocus, astig) == (0.0, 0.0) else frame_psf(spec, defocus, astig,
                                                                          cond["astigmatism_angle_deg"][k])[0]
            signal = render_psf((h, w), x_rigid[k], y_rigid[k], amplitude, psf, ov, row_shift_px=row_shift)
        else:
            signal = sample_cell_image(cell_images["images"][k], cell_images["sampling_A"], (h, w), px_A,
                                       spec.rotation_deg, specimen["origin_A"], drift_px[k], row_shift)
            signal = ndimage.gaussian_filter(signal, spec.source_size_A / FWHM_PER_SIGMA / px_A)
        fraction = spec.background_fraction + signal + ramp
        if contamination is not None:
            fraction = fraction + _sample_contamination(contamination, (h, w), px_A, margin_A, drift_px[k], row_shift)
        expected_frames[k] = cond["dose_e_per_A2"][k] * px_A ** 2 * fraction
        counts = rng.poisson(expected_frames[k]).astype(np.float64)
        if spec.read_noise_counts > 0:
            counts += rng.normal(0.0, spec.read_noise_counts, size=counts.shape)
        frames[k] = counts
    truth = _truth(specimen, weight, true_strain, x_rigid, y_rigid, scan, expected_frames)
    return Series(frames, _series_attrs(spec, px_A / ov), cond, truth, name=name,
                  clean=expected_frames if return_clean else None)


def _frame_conditions(spec: SeriesSpec, rng: np.random.Generator) -> dict:
    """The random per-frame conditions of a series, in the order of a series file's arrays.

    ``dose_e_per_A2`` (log-uniform), ``drift_px`` (random walk from (0, 0)),
    ``scan_shift_px`` (smooth slow-scan distortion: it moves the truth),
    ``scan_jitter_px`` (line jitter: noise around the truth, since a column spread
    over rows with independent offsets has no better-defined position), ``defocus_nm``,
    ``astigmatism_nm`` and ``astigmatism_angle_deg``.
    """
    h = spec.shape_px[0]
    steps = rng.normal(0.0, spec.drift_px_per_frame, size=(spec.n_frames, 2))
    steps[0] = 0.0
    drift_px = np.cumsum(steps, axis=0)
    scan = np.stack([scan_distortion(h, spec.scan_creep_px, spec.scan_wobble_px, spec.scan_wobble_rows, rng)
                     for _ in range(spec.n_frames)])
    jitter = np.stack([scan_jitter(h, spec.scan_jitter_px, rng) for _ in range(spec.n_frames)])
    jitter -= jitter.mean(axis=1, keepdims=True)  # the rigid drift of a frame stays its mean shift
    defocus = rng.uniform(*spec.defocus_nm, size=spec.n_frames)
    astig = rng.uniform(0.0, spec.astigmatism_nm, size=spec.n_frames)
    astig_angle = rng.uniform(0.0, 180.0, size=spec.n_frames)
    log_lo, log_hi = np.log(spec.dose_e_per_A2)
    dose = np.exp(rng.uniform(log_lo, log_hi, size=spec.n_frames))
    if spec.frame_dose_e_per_A2:
        dose = np.asarray(spec.frame_dose_e_per_A2, dtype=np.float64)
    if spec.frame_defocus_nm:
        defocus = np.asarray(spec.frame_defocus_nm, dtype=np.float64)
    return {"dose_e_per_A2": dose, "drift_px": drift_px, "scan_shift_px": scan, "scan_jitter_px": jitter,
            "defocus_nm": defocus, "astigmatism_nm": astig, "astigmatism_angle_deg": astig_angle}


_CONTAMINATION_SAMPLING_A = 2.0
"""Sampling of the contamination field, Å: the field is smooth on this scale."""


def _contamination(spec: SeriesSpec, fov_A, margin_A: float, rng: np.random.Generator) -> np.ndarray | None:
    """The contamination field over the field of view and its margin (None without contamination)."""
    if not spec.contamination_fraction > 0:
        return None
    size = (fov_A[1] + 2 * margin_A, fov_A[0] + 2 * margin_A)
    return contamination_field(size, _CONTAMINATION_SAMPLING_A, spec.contamination_blobs,
                               spec.contamination_fraction, spec.contamination_radius_A, rng)


def _sample_contamination(field: np.ndarray, shape_px, px_A: float, margin_A: float, drift_px, row_shift_px
                          ) -> np.ndarray:
    """The contamination at every pixel's scan position (Å from the padded area's corner)."""
    h, w = shape_px
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :]
    sx = (cols - row_shift_px[:, 0:1] - drift_px[0]) * px_A + margin_A
    sy = np.broadcast_to((rows - row_shift_px[:, 1:2] - drift_px[1]) * px_A + margin_A, sx.shape)
    return ndimage.map_coordinates(field, [sy / _CONTAMINATION_SAMPLING_A, sx / _CONTAMINATION_SAMPLING_A], order=1,
                                   mode="nearest")


def _ramp(spec: SeriesSpec, rng: np.random.Generator):
    """A linear background ramp of ``ramp_fraction`` in a random direction (scan coordinates), or 0."""
    if not spec.ramp_fraction > 0:
        return 0.0
    h, w = spec.shape_px
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    plane = np.cos(theta) * xx + np.sin(theta) * yy
    return spec.ramp_fraction * (plane - plane.min()) / max(float(np.ptp(plane)), 1e-12)


def _truth(specimen: dict, weight, true_strain, x_rigid, y_rigid, scan, expected_frames) -> Truth:
    """The labelled columns in every frame (following the slow-scan distortion) and their labels."""
    labelled = specimen["labelled"]
    n = len(x_rigid)
    x_true = np.empty((n, int(labelled.sum())))
    y_true = np.empty_like(x_true)
    offsets = np.empty((n, x_true.shape[1], 2))
    for k in range(n):
        x_true[k], y_true[k] = distorted_positions(x_rigid[k][labelled], y_rigid[k][labelled], scan[k])
        offsets[k] = noise_free_peak_offsets(expected_frames[k], x_true[k], y_true[k])
    zs = [col for col, keep in zip(specimen["atomic_numbers"], labelled) if keep]
    labels = [_column_label(col) for col in zs]
    return Truth(x_true, y_true, element=np.array([label for label, _ in labels], dtype=str),
                 kind=np.array([kind for _, kind in labels], dtype=str),
                 extra={"weight": weight[labelled], "occupancy": specimen["occupancy"][labelled],
                        "peak_offset_px": offsets, "strain": true_strain[labelled]})


def _series_attrs(spec: SeriesSpec, psf_sampling_A: float) -> dict:
    """The provenance attributes of a simulated series (crystals: ``lattice_px``, the unstrained
    lattice, rows a and b in pixels: the reference of the strain maps)."""
    attrs = {
        "pixel_size_pm": float(spec.pixel_size_pm),
        "material": spec.material,
        "simulator": spec.simulator,
        "seed": int(spec.seed),
        "energy_keV": float(spec.energy_keV),
        "semiangle_mrad": float(spec.semiangle_mrad),
        "source_size_A": float(spec.source_size_A),
        "psf_sampling_A": float(psf_sampling_A),
        "intensity_unit": "counts",
        "rotation_deg": float(spec.rotation_deg),
        "strain_field": spec.strain_field,
    }
    if spec.material != AMORPHOUS:
        attrs["lattice_px"] = rotated_lattice_px(project_columns(build_atoms(spec.material)).cell_A,
                                                 spec.rotation_deg, spec.pixel_size_pm)
    return attrs


def noise_free_peak_offsets(clean: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, radius_px: float = 1.5
                            ) -> np.ndarray:
    """Offsets between truth positions and the peaks of a noise-free image.

    For each position, the brightest pixel within ``radius_px`` of it is taken
    as the peak if it is a local maximum (3 x 3), and refined to sub-pixel by a
    parabola through the logarithm of the 3 values along x and along y (exact
    for a Gaussian peak).  Positions closer than ``radius_px + 1`` to the border,
    or without a local maximum nearby, get NaN.

    Parameters
    ----------
    clean : ndarray, shape (H, W)
        Noise-free image (``simulate_series(..., return_clean=True).clean[k]``).
    x_px, y_px : ndarray, shape (m,)
        Truth positions of that frame, pixels.
    radius_px : float
        Search radius, pixels.

    Returns
    -------
    ndarray, shape (m, 2)
        (peak - truth) along x and y, pixels; NaN where no peak was found.
    """
    img = np.log(np.maximum(np.asarray(clean, dtype=np.float64), 1e-300))
    h, w = img.shape
    r = int(np.ceil(radius_px))
    is_max = img == ndimage.maximum_filter(img, size=3, mode="nearest")
    out = []
    for x, y in zip(np.asarray(x_px, float), np.asarray(y_px, float)):
        ix, iy = int(round(x)), int(round(y))
        if not (r + 1 <= ix < w - r - 1 and r + 1 <= iy < h - r - 1):
            out.append((np.nan, np.nan))
            continue
        win = img[iy - r:iy + r + 1, ix - r:ix + r + 1]
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        win = np.where(np.hypot(xx + ix - x, yy + iy - y) <= radius_px, win, -np.inf)
        j = np.unravel_index(np.argmax(win), win.shape)
        py, px = iy - r + j[0], ix - r + j[1]
        if not is_max[py, px]:
            out.append((np.nan, np.nan))
            continue
        ox = parabolic_vertex(img[py, px - 1], img[py, px], img[py, px + 1])
        oy = parabolic_vertex(img[py - 1, px], img[py, px], img[py + 1, px])
        out.append((px + ox - x, py + oy - y))
    return np.array(out).reshape(-1, 2)


def peak_offset_medians(series: Series) -> dict:
    """Median ``|peak_offset_px|`` of a simulated series: all frames, and frames within the depth of field.

    Parameters
    ----------
    series : Series
        :func:`simulate_series` output (or :func:`atomloc.io.series.read_series`):
        needs the truth's ``peak_offset_px``, ``defocus_nm`` and the attributes
        ``energy_keV`` and ``semiangle_mrad``.

    Returns
    -------
    dict
        ``all_px`` and ``in_focus_px`` (NaN when no frame is in focus), the
        number of frames ``n_frames`` and ``n_in_focus``, the number of
        (column, frame) offsets measured ``n_offsets``, and ``half_dof_nm``:
        frames with ``|defocus| <= half_dof_nm`` count as in focus.
    """
    dist = np.hypot(*np.moveaxis(np.asarray(series.truth.extra["peak_offset_px"], dtype=float), -1, 0))
    focus, half = series.in_focus()
    if focus is None:
        raise AtomlocInputError("peak_offset_medians: the series stores no defocus_nm / energy_keV / semiangle_mrad")

    def median(values):
        values = values[np.isfinite(values)]
        return float(np.median(values)) if len(values) else float("nan")

    return {"all_px": median(dist.ravel()), "in_focus_px": median(dist[focus].ravel()), "n_frames": len(dist),
            "n_in_focus": int(focus.sum()), "n_offsets": int(np.isfinite(dist).sum()), "half_dof_nm": half}
