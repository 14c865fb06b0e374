"""Scoring and analysis: matching and metrics, the Cramér–Rao bound, evaluation of series,
strain (from positions and by GPA) and the benchmark tables.

Functions take arrays, data frames and :class:`~atomloc.io.series.Series`, not paths.
"""

from atomloc.analysis.crlb import gaussian_position_crlb_px, image_crlb_px
from atomloc.analysis.evaluate import evaluate_labels, evaluate_series, frame_crlb, label_errors_pm, strain_benchmark
from atomloc.analysis.metrics import DetectionScore, chamfer_distance, match_points, score_detections, spacing_sanity
from atomloc.analysis.strain import gpa_strain, lattice_parameter_precision, strain_from_positions

__all__ = ["DetectionScore", "chamfer_distance", "evaluate_labels", "evaluate_series", "frame_crlb",
           "gaussian_position_crlb_px", "gpa_strain", "image_crlb_px", "label_errors_pm",
           "lattice_parameter_precision", "match_points", "score_detections", "spacing_sanity", "strain_benchmark",
           "strain_from_positions"]
