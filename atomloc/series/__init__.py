"""Series work: drift alignment, and reference labels from the best frame carried to every frame."""

from atomloc.series.align import ALIGNMENTS, align_series, transfer_error_px, transfer_positions
from atomloc.series.label import label_reference_frame, select_transfer, training_positions, transfer_labels

__all__ = ["ALIGNMENTS", "align_series", "label_reference_frame", "select_transfer", "training_positions",
           "transfer_error_px", "transfer_labels", "transfer_positions"]
