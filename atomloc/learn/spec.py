"""Training settings of the learned locators (no PyTorch import, so a workflow can check them cheaply)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from atomloc.core.settings import FromMapping
from atomloc.locate.nets import ATOMID, NETWORKS, RESTORATION_TARGETS, RESTORER

TARGETS = ("confidence", "gaussian_mask", "circular_mask")
"""Label maps a locator learns."""

RESTORER_LOSSES = ("mse", "range_mse", "psnr")
"""A restorer's losses (:attr:`TrainSpec.restorer_loss`)."""

RESTORE_TARGETS = tuple(RESTORATION_TARGETS.values())
"""Library targets a ``restorer`` learns (:data:`atomloc.simulate.library.RESTORATION_LABELS`)."""


@dataclass(frozen=True)
class TrainSpec(FromMapping):
    """Training settings.

    The defaults are generic starting values; each model's own values live under
    ``models.<name>.train`` in ``config.yaml`` (and the schema's defaults there), which
    override them key by key.

    Attributes
    ----------
    architecture : str
        ``atomsegnet``, ``atomid`` or ``restorer``.
    target : str
        Label map the network learns: ``confidence`` (AtomID-net),
        ``gaussian_mask`` or ``circular_mask`` (AtomSegNet); for a ``restorer``
        a restoration target of the library (``no_noise``,
        ``no_background_no_noise``, ``superres``), learned with the loss
        ``restorer_loss``.
    base_channels, depth : int
        U-Net width and number of pooling steps.
    epochs, batch_size : int
    lr : float
        Initial learning rate (Adam).
    lr_step_epochs : int
        The learning rate is multiplied by ``lr_gamma`` every this many epochs.
    lr_gamma : float
    lambda_map : float
        Weight of the map term in AtomID-net's loss.
    crop_px : int
        Side of the tiles cut from labelled series frames (a multiple of 2**depth).
    val_frac : float
        Fraction of the images held out for validation.
    confidence_sigma_frac : float
        Confidence peaks of labelled series: sigma = this x spacing.
    gaussian_mask_fwhm_A : float
        gaussianMask peaks of labelled series: FWHM in Å.
    min_confidence : float
        Validation detection: lower bound of the NMS head.
    restorer_loss : str
        A restorer's loss, in the input's normalised units: ``mse`` (the mean
        squared error over the batch) or ``range_mse`` (each image's mean squared
        error divided by its target's squared peak-to-peak range, floored at
        :data:`atomloc.learn.train.RANGE_FLOOR`: the quantity PSNR measures, so a
        low-dose image, whose target spans a small part of the normalised range,
        weighs as much as a bright one) or ``psnr`` (minus the images' mean PSNR
        in dB with that range: each image's relative error on a log scale, so the
        worst images do not drown the rest).
    noise_channel : bool
        A restorer's second input channel: the image's noise level
        (:func:`atomloc.locate.nets.models.noise_level`), FFDNet's noise-level map.
    gated : bool
        A restorer's gated residual head (:class:`atomloc.locate.nets.models.UNet`).
    series_repeat : int
        Each training tile cut from a labelled series is drawn this many times
        per epoch (the library images once): weights the data that look like
        the benchmark's series.  Validation images are never repeated.
    seed : int
    """

    config_name: ClassVar[str] = "train"

    architecture: str = ATOMID
    target: str = "confidence"
    base_channels: int = 8
    depth: int = 3
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    lr_step_epochs: int = 50
    lr_gamma: float = 0.1
    lambda_map: float = 0.1
    crop_px: int = 128
    val_frac: float = 0.15
    confidence_sigma_frac: float = 0.15
    gaussian_mask_fwhm_A: float = 0.5
    min_confidence: float = 0.3
    restorer_loss: str = "mse"
    noise_channel: bool = False
    gated: bool = False
    series_repeat: int = 1
    seed: int = 0

    def check(self, name: str = "train") -> None:
        bad = functools.partial(self._out_of_range, name)

        if self.architecture not in NETWORKS:
            bad("architecture", f"must be one of {NETWORKS}")
        targets = RESTORE_TARGETS if self.architecture == RESTORER else TARGETS
        if self.target not in targets:
            bad("target", f"must be one of {targets} for architecture {self.architecture}")
        for key in ("base_channels", "depth", "epochs", "batch_size", "lr_step_epochs", "series_repeat"):
            if getattr(self, key) < 1:
                bad(key, "must be >= 1")
        if self.crop_px % 2 ** self.depth or self.crop_px < 2 ** self.depth:
            bad("crop_px", f"must be a positive multiple of 2**depth = {2 ** self.depth}")
        for key in ("lr", "lr_gamma", "confidence_sigma_frac", "gaussian_mask_fwhm_A"):
            if not getattr(self, key) > 0:
                bad(key, "must be > 0")
        if self.lambda_map < 0:
            bad("lambda_map", "must be >= 0")
        if not 0 <= self.val_frac < 1:
            bad("val_frac", "must be in [0, 1)")
        if not 0 <= self.min_confidence <= 1:
            bad("min_confidence", "must be in [0, 1]")
        if self.restorer_loss not in RESTORER_LOSSES:
            bad("restorer_loss", f"must be one of {RESTORER_LOSSES}")
        for key in ("noise_channel", "gated"):
            if not isinstance(getattr(self, key), bool):
                bad(key, "must be true or false")
            if getattr(self, key) and self.architecture != RESTORER:
                bad(key, f"is a restorer's option, not {self.architecture}'s")
