"""U-Net models of the learned locators, their losses, checkpoints and tiled inference.

* ``atomsegnet``: an AtomSegNet-style U-Net (per block two 3x3 conv + batch
  norm + ReLU, 2x2 max-pool, bilinear up-sampling + 3x3 conv, skip
  concatenation, sigmoid head) trained with the modified chi-square loss.
* ``atomid``: the same U-Net plus AtomID-net's global-spacing branch (global
  average of the bottleneck features -> two linear layers -> spacing in pixels),
  trained with ``L = 1/(2N) sum_i (lambda ||f(X_i) - Y_i||^2 + (g(X_i) - s_i)^2)``.
* ``restorer``: the same U-Net with a linear residual head (output = input +
  1x1 conv of the last features; DnCNN's residual learning), trained with the
  mean squared error against a restoration target in the input's normalised units;
  optionally told the image's noise level in a second input channel (FFDNet) and
  with a per-pixel gate on the input it adds to (``noise_channel``, ``gated``).

Images enter the networks normalised by :func:`normalise_input` (0.5th and
99.5th percentiles to 0 and 1), so the counts scale of a detector does not
matter.  Maps come out at the input's pixel grid (x = column index).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from atomloc.core.errors import AtomlocInputError
from atomloc.io.files import atomic_path
from atomloc.locate.nets import ATOMID, NETWORKS, PRECISIONS, RESTORER, sidecar_path


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else Apple MPS when available, else CPU."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def input_scaling(image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> tuple[float, float]:
    """``(lo, scale)`` of :func:`normalise_input`: the network sees ``(image - lo) / scale``."""
    lo, hi = np.percentile(np.asarray(image, dtype=np.float32), [low_pct, high_pct])
    return float(lo), max(float(hi - lo), 1e-12)


def normalise_input(image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Scale an image so its ``low_pct`` and ``high_pct`` percentiles map to 0 and 1 (float32)."""
    image = np.asarray(image, dtype=np.float32)
    lo, scale = input_scaling(image, low_pct, high_pct)
    return ((image - lo) / scale).astype(np.float32)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with an optional global-spacing branch.

    Parameters
    ----------
    base_channels : int
        Channels of the first block; doubled at each of the ``depth`` levels.
    depth : int
        Number of 2x2 max-pool steps; inputs are padded to a multiple of 2**depth.
    spacing_branch : bool
        Add AtomID-net's branch regressing the mean nearest-neighbour spacing (pixels).
    residual : bool
        Linear residual head (restoration: input + 1x1 conv of the features)
        instead of the sigmoid map; the weights are the same either way.
    noise_channel : bool
        A second input channel holding the image's noise level (:func:`noise_level`,
        constant over the image), FFDNet's noise-level map [1]_: the network is told how
        noisy its input is instead of guessing it from the texture.  :func:`predict`
        computes and appends it.
    gated : bool
        With ``residual``: the output is ``g * input + head`` with a per-pixel gate
        ``g = sigmoid(1x1 conv of the features)`` (started near 1: the residual head),
        so where the input is mostly noise the network can predict the image outright
        instead of the noise to subtract.

    References
    ----------
    .. [1] K. Zhang, W. Zuo, L. Zhang, "FFDNet: toward a fast and flexible solution for CNN-based
       image denoising", IEEE Trans. Image Process. 27, 4608 (2018).
    """

    def __init__(self, base_channels: int = 8, depth: int = 3, spacing_branch: bool = False,
                 residual: bool = False, noise_channel: bool = False, gated: bool = False):
        super().__init__()
        if gated and not residual:
            raise AtomlocInputError("a gated head needs the residual (restorer) head")
        self.depth = depth
        self.residual = residual
        self.noise_channel = noise_channel
        self.gated = gated
        chans = [base_channels * 2 ** k for k in range(depth + 1)]
        c_in = 2 if noise_channel else 1
        self.down = nn.ModuleList([_block(c_in, chans[0])] +
                                  [_block(chans[k - 1], chans[k]) for k in range(1, depth)])
        self.bottleneck = _block(chans[depth - 1], chans[depth])
        self.up = nn.ModuleList([nn.Conv2d(chans[k + 1], chans[k], 3, padding=1) for k in reversed(range(depth))])
        self.dec = nn.ModuleList([_block(2 * chans[k], chans[k]) for k in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], 1, 1)
        self.gate = nn.Conv2d(chans[0], 1, 1) if gated else None
        if gated:
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, 3.0)  # sigmoid(3) = 0.95: starts as the residual head
        self.spacing = (nn.Sequential(nn.Linear(chans[depth], 32), nn.ReLU(inplace=True), nn.Linear(32, 1))
                        if spacing_branch else None)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map (N, 1, H, W) in [0, 1] after sigmoid (restorer: the restored input), and the bottleneck
        features (N, C, H/2**d, W/2**d), from the input (N, 1, H, W) (``noise_channel``: (N, 2, H, W),
        the image and its noise level)."""
        inp = x
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        bottom = self.bottleneck(x)
        x = bottom
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = up(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            x = dec(torch.cat([x, skip], dim=1))
        if x.dtype != inp.dtype:  # under bfloat16 autocast (predict's precision): the head and outputs in float32
            x, bottom = x.to(inp.dtype), bottom.to(inp.dtype)
            with torch.autocast(x.device.type, enabled=False):
                out, gate = self._heads(x)
        else:
            out, gate = self._heads(x)
        if self.residual:
            image = inp[:, :1]
            return (image if gate is None else gate * image) + out, bottom
        return torch.sigmoid(out), bottom

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The 1x1 head and, for a gated model, the sigmoid gate, of the last features."""
        return self.head(x), (None if self.gate is None else torch.sigmoid(self.gate(x)))

    def spacing_from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Spacing in pixels (N,) from globally averaged bottleneck features (N, C)."""
        if self.spacing is None:
            raise RuntimeError("this U-Net has no spacing branch")
        return torch.exp(self.spacing(pooled)[:, 0])

    def forward(self, x: torch.Tensor):
        conf, bottom = self.forward_features(x)
        if self.spacing is None:
            return conf
        return conf, self.spacing_from_pooled(bottom.mean(dim=(2, 3)))


def fold_batch_norm(model: UNet) -> UNet:
    """The model for inference with each BatchNorm folded into the convolution before it.

    In eval mode a BatchNorm is an affine map per channel, so ``conv -> BN`` is one
    convolution with rescaled weights and a bias (torch's ``fuse_conv_bn_eval``);
    the folded network computes the same map (to float32 rounding, ~1e-6) without
    the BatchNorm passes over every feature map: 18 % of AtomID-net's CPU time on
    a 840 x 840 input here.  The result has no BatchNorm to train: use it for
    inference only, and save the unfolded model (:func:`save_checkpoint`).

    Parameters
    ----------
    model : UNet
        Left unchanged (a folded copy is returned).

    Returns
    -------
    UNet
        In eval mode, its BatchNorm layers replaced by ``nn.Identity``.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    return folded


def build_model(architecture: str, base_channels: int = 8, depth: int = 3, *, noise_channel: bool = False,
                gated: bool = False) -> UNet:
    """A fresh model of ``architecture`` (one of :data:`atomloc.locate.nets.NETWORKS`);
    ``noise_channel`` and ``gated`` (:class:`UNet`) for a restorer only."""
    if architecture not in NETWORKS:
        raise AtomlocInputError(f"architecture {architecture!r} unknown; expected one of {NETWORKS}")
    if (noise_channel or gated) and architecture != RESTORER:
        raise AtomlocInputError(f"architecture {architecture!r}: noise_channel and gated are a restorer's options")
    return UNet(base_channels=base_channels, depth=depth, spacing_branch=architecture == ATOMID,
                residual=architecture == RESTORER, noise_channel=noise_channel, gated=gated)


def noise_level(image: np.ndarray) -> float:
    """The noise level a ``noise_channel`` network is given: the white noise's standard deviation
    (:func:`atomloc.locate.noise.noise_sigma`) in the normalised units of :func:`normalise_input`.

    Both are affine-equivariant, so the level of a normalised image is that of the raw one.
    """
    from atomloc.locate.noise import noise_sigma

    image = np.asarray(image, dtype=np.float64)
    return float(noise_sigma(image) / input_scaling(image)[1])


def with_noise_channel(x: torch.Tensor, levels: torch.Tensor | None) -> torch.Tensor:
    """``x`` (n, 1, H, W) with each image's noise level (n,) appended as a constant second channel, the
    input of a ``noise_channel`` model (:func:`predict`, the training loop); ``x`` itself where ``levels``
    is None."""
    if levels is None:
        return x
    return torch.cat([x, levels.to(x).view(-1, 1, 1, 1).expand_as(x)], dim=1)


def chi_square_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """AtomSegNet's modified chi-square ``sum (I - I_gt)^2 / (I_gt + max(I_gt) / 10)``, averaged over images.

    ``max(I_gt)`` is taken per image.

    References
    ----------
    .. [1] R. Lin et al., Sci. Rep. 11, 5386 (2021): TEMImageNet and AtomSegNet (see
       :func:`atomloc.locate.learned.atomsegnet_locate`).
    """
    peak = target.amax(dim=tuple(range(1, target.ndim)), keepdim=True)
    per_image = ((pred - target) ** 2 / (target + peak / 10 + 1e-12)).sum(dim=tuple(range(1, target.ndim)))
    return per_image.mean()


def atomid_loss(conf: torch.Tensor, spacing: torch.Tensor, conf_target: torch.Tensor, spacing_target: torch.Tensor,
                lam: float = 0.1) -> torch.Tensor:
    """AtomID-net's loss ``1/(2N) sum_i (lam ||f(X_i) - Y_i||^2 + (g(X_i) - s_i)^2)``.

    ``||.||^2`` is the sum of squares over the pixels of one image; spacings in pixels.
    """
    n = conf.shape[0]
    map_term = ((conf - conf_target) ** 2).reshape(n, -1).sum(dim=1)
    return (lam * map_term + (spacing - spacing_target) ** 2).sum() / (2 * n)


# --- checkpoints ----------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, model: UNet, architecture: str, meta: dict) -> None:
    """Write the state dict to ``path`` and a JSON sidecar (architecture, training, metrics), atomically."""
    arch = {"name": architecture, "base_channels": model.down[0][0].out_channels, "depth": model.depth}
    arch.update({k: True for k in ("noise_channel", "gated") if getattr(model, k)})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # torch.save names the zip's top folder after the file; through a buffer it is always
    # "archive", so the same weights give the same bytes whatever the (temporary) file name
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(sidecar_path(path)) as tmp_json, atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
        tmp_json.write_text(json.dumps({"architecture": arch, **meta}, indent=2, sort_keys=True, default=float))


# Sidecar sections the locators read, and the type of each value they read (None: may be null).
_SIDECAR_FIELDS = {
    "library": {"spacing_px_range": "range"},
    "inference": {"spacing_px": "number", "noise_gate": "bool"},
    "operating_point": {"min_confidence": "number", "threshold": "number or null"},
}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fits(value, kind: str) -> bool:
    if kind == "number":
        return _is_number(value)
    if kind == "number or null":
        return value is None or _is_number(value)
    if kind == "bool":
        return isinstance(value, bool)
    # range: [low, high], 0 < low <= high
    return (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
            and 0 < value[0] <= value[1])


def read_sidecar(path: str | os.PathLike) -> dict:
    """The JSON sidecar of a checkpoint, its shape checked.

    Parameters
    ----------
    path : path-like
        The sidecar (``model.json``; :func:`sidecar_path`).

    Returns
    -------
    dict
        ``architecture`` (``name``, ``base_channels``, ``depth``; a restorer's
        ``noise_channel`` and ``gated``, booleans, where present) and whatever
        else the training recorded; the values the locators read
        (``library.spacing_px_range`` in px, ``inference.spacing_px`` in px,
        ``inference.noise_gate``, ``operating_point.min_confidence`` and
        ``operating_point.threshold``) are of the right type where present.

    Raises
    ------
    AtomlocInputError
        In one line naming the file, if it is not JSON or not of that shape.
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not JSON ({str(exc).splitlines()[0]})"
        raise AtomlocInputError(f"{path}: not a model sidecar: {reason}") from None

    def bad(what: str) -> AtomlocInputError:
        return AtomlocInputError(f"{path}: not a model sidecar: {what}")

    if not isinstance(meta, dict):
        raise bad(f"expected a JSON object, got {type(meta).__name__}")
    arch = meta.get("architecture")
    if not isinstance(arch, dict):
        raise bad("no 'architecture' object (name, base_channels, depth)")
    if arch.get("name") not in NETWORKS:
        raise bad(f"architecture.name={arch.get('name')!r}, expected one of {', '.join(NETWORKS)}")
    for key in ("base_channels", "depth"):
        value = arch.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1024):
            raise bad(f"architecture.{key}={value!r}, expected an integer in [1, 1024]")
    for key in ("noise_channel", "gated"):
        if key in arch and not isinstance(arch[key], bool):
            raise bad(f"architecture.{key}={arch[key]!r}, expected true or false")
    for section, fields in _SIDECAR_FIELDS.items():
        if section not in meta:
            continue
        if not isinstance(meta[section], dict):
            raise bad(f"{section}={meta[section]!r}, expected an object")
        for key, kind in fields.items():
            if key in meta[section] and not _fits(meta[section][key], kind):
                expected = {"range": "[low, high] with 0 < low <= high"}.get(kind, kind)
                raise bad(f"{section}.{key}={meta[section][key]!r}, expected {expected}")
    return meta


def _read_weights(path: Path) -> dict:
    """The state dict of a checkpoint, loaded with ``weights_only=True``; one-line errors in atomloc's words.

    Never passes on torch's own message: it advises retrying with ``weights_only=False``, which would
    run whatever code a malicious file holds.
    """
    if path.stat().st_size == 0:
        raise AtomlocInputError(f"{path}: cannot load the model weights: the file is empty")
    not_checkpoint = AtomlocInputError(f"{path}: cannot load the model weights: not a PyTorch checkpoint "
                                       "(truncated, corrupt or another kind of file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before failing
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):
            raise AtomlocInputError(f"{path}: refused: the checkpoint holds Python objects besides weights (loading "
                                    "them could run code); atomloc loads weights only") from None
        raise not_checkpoint from None
    except Exception:  # noqa: BLE001 - zip, I/O and storage errors differ between torch versions
        raise not_checkpoint from None
    if not (isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in state.items())):
        raise AtomlocInputError(f"{path}: cannot load the model weights: it holds a {type(state).__name__}, "
                                "not a state dict of named tensors")
    return state


def load_checkpoint(path: str | os.PathLike, architecture: str, device: str | torch.device | None = None
                    ) -> tuple[UNet, dict]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Parameters
    ----------
    path : path-like
        The ``.pt`` file; its JSON sidecar (:func:`sidecar_path`) lies beside it.
    architecture : str
        The architecture asked for (one of :data:`atomloc.locate.nets.NETWORKS`).
    device : str or torch.device, optional
        Where the model goes (:func:`pick_device`).

    Returns
    -------
    model : UNet
        In eval mode.
    meta : dict
        The sidecar (:func:`read_sidecar`).

    Raises
    ------
    AtomlocInputError
        In one line naming the file and the problem, in atomloc's words (never
        torch's message, which suggests ``weights_only=False``): a missing file,
        a sidecar that is not JSON or not of the expected shape, a checkpoint that
        is empty, truncated, corrupt, not a state dict, holds pickled objects
        besides tensors, or whose weights do not fit the sidecar's architecture,
        or a checkpoint of another architecture than ``architecture``.
    """
    path = Path(path)
    side = sidecar_path(path)
    for p in (path, side):
        if not p.is_file():
            raise AtomlocInputError(f"{p}: model file not found")
    meta = read_sidecar(side)
    arch = meta["architecture"]
    if arch["name"] != architecture:
        raise AtomlocInputError(f"{path}: checkpoint of a {arch['name']!r} model, but {architecture!r} was asked for")
    try:
        model = build_model(architecture, arch["base_channels"], arch["depth"],
                            noise_channel=arch.get("noise_channel", False), gated=arch.get("gated", False))
    except AtomlocInputError as exc:
        raise AtomlocInputError(f"{side}: {exc}") from None
    state = _read_weights(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        problems = [f"{len(v)} {what} (e.g. {v[0]})" for v, what in
                    ((missing, "missing"), (unexpected, "unexpected"), (wrong, "of the wrong shape")) if v]
        raise AtomlocInputError(
            f"{path}: the weights do not fit the {architecture} model its sidecar describes (base_channels "
            f"{arch['base_channels']}, depth {arch['depth']}): {', '.join(problems)}")
    model.load_state_dict(state)
    model.to(pick_device(device) if not isinstance(device, torch.device) else device).eval()
    return model, meta


# --- inference ------------------------------------------------------------------------------------

def _tiles(n: int, tile: int, margin: int, mult: int) -> list[tuple[int, int, int]]:
    """Tiles along one axis: (start, own_start, own_end); the owned parts partition [0, n).

    Tiles of ``tile`` pixels overlap by at least ``2 * margin``; neighbouring
    tiles split their overlap at a multiple of ``mult`` near its middle.
    """
    if n <= tile:
        return [(0, 0, n)]
    step = max(mult, tile - 2 * margin)
    starts = list(range(0, n - tile, step)) + [n - tile]
    bounds = [0] + [((s0 + tile + s1) // 2 // mult) * mult for s0, s1 in zip(starts[:-1], starts[1:])] + [n]
    return [(s, bounds[k], bounds[k + 1]) for k, s in enumerate(starts)]


# the dihedral group D4 of the square: (quarter turns, mirror x first)
D4 = tuple((k, flip) for flip in (False, True) for k in range(4))


def _d4_forward(model: UNet, x: torch.Tensor, tta: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.forward_features(x)``, or with ``tta`` its mean over the eight D4
    transforms of ``x``, each output mapped back by the inverse transform.

    With the sides of ``x`` multiples of ``2**depth`` (as :func:`predict` pads
    them) every pooling window maps onto a pooling window, so the averaged map
    is exactly D4-equivariant: the map of a rotated or mirrored image is the
    rotated or mirrored map.
    """
    if not tta:
        return model.forward_features(x)
    conf_sum, bottom_sum = 0.0, 0.0
    for k, flip in D4:
        u = torch.flip(x, dims=(-1,)) if flip else x
        u = torch.rot90(u, k, dims=(-2, -1)).contiguous(memory_format=torch.channels_last)
        conf, bottom = model.forward_features(u)
        conf, bottom = torch.rot90(conf, -k, dims=(-2, -1)), torch.rot90(bottom, -k, dims=(-2, -1))
        if flip:
            conf, bottom = torch.flip(conf, dims=(-1,)), torch.flip(bottom, dims=(-1,))
        conf_sum, bottom_sum = conf_sum + conf, bottom_sum + bottom
    return conf_sum / len(D4), bottom_sum / len(D4)


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` is a CPU that runs bfloat16 convolutions natively.

    x86: the AVX512-BF16 or AMX instructions (oneDNN's own test,
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported``, also says yes for any
    AVX-512 CPU, which emulates bfloat16, slower than float32); Arm: oneDNN's
    test.  A torch without these probes gets ``False``.
    """
    import platform

    if torch.device(device).type != "cpu":
        return False
    probe = torch.cpu if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") else None
    try:
        if probe is not None:
            return bool(probe._is_avx512_bf16_supported() or probe._is_amx_tile_supported())
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(model: UNet, device: str | torch.device, precision: str) -> bool:
    """:data:`atomloc.locate.nets.PRECISIONS` resolved for ``model`` on ``device``."""
    if precision not in PRECISIONS:
        raise AtomlocInputError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return not model.residual and native_bf16(device)
    return precision == "bf16"


@torch.no_grad()
def predict(model: UNet, images: np.ndarray, max_tile_px: int = 1024, margin_px: int = 96, batch_size: int = 4,
            device: str | torch.device | None = None, tta: bool = False,
            precision: str = "fp32", noise_levels=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Run a model on images of any size.

    Each image is normalised (:func:`normalise_input`) and reflect-padded to a
    multiple of ``2**depth``.  Images larger than ``max_tile_px`` are cut into
    tiles of that size (multiples of ``2**depth``) overlapping by
    ``2 * margin_px``; each tile contributes only its interior, so the tiled map
    equals the untiled one where ``margin_px`` exceeds the receptive-field radius.
    The spacing is computed from the bottleneck features averaged over the
    image (tiles contribute their interiors), so it too does not depend on the
    tiling.

    Parameters
    ----------
    images : ndarray, shape (H, W) or (n, H, W)
    tta : bool
        Test-time augmentation: average the outputs over the eight rotations
        and mirror images of each tile (D4), each mapped back to the input grid
        (:func:`_d4_forward`); 8x the network time.  The spacing branch then
        reads the mean of the mapped-back bottleneck features.
    noise_levels : sequence of float, optional
        A ``noise_channel`` model's input noise level per image (default: :func:`noise_level` of
        each image; an up-sampled image needs the level of the image before, since its noise is
        no longer white: :func:`atomloc.locate.restore.learned_restore`).  Images of a
        ``noise_channel`` model must be at least 8 x 8 px.
    precision : str
        :data:`atomloc.locate.nets.PRECISIONS`.  On a CPU with native bfloat16 ``bf16`` halves the
        network's time (AtomID-net on a 1024² frame, 2 cores: 0.79 -> 0.40 s);
        its maps differ from float32 by up to about 0.02 (0.017 on that frame;
        the ``atomid`` method's RMSE against the truth rose by 0.005-0.02 pm on
        512² MoS2 and SrTiO3 frames, with the same detections).

    Returns
    -------
    maps : ndarray of float32, shape (n, H, W)
        Sigmoid output (confidence or segmentation map) on the input grid; for a
        ``restorer``, the restored image in the normalised units of
        :func:`normalise_input` (:func:`input_scaling` maps it back).
    spacing_px : ndarray, shape (n,), or None
        Predicted mean nearest-neighbour spacing, pixels (``atomid`` only).
    """
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    dev = next(model.parameters()).device if device is None else torch.device(device)
    # channels-last memory layout: about 2x faster convolutions on CPU, same numbers
    model.to(dev, memory_format=torch.channels_last).eval()
    mult = 2 ** model.depth
    n, h, w = images.shape
    hp, wp = math.ceil(h / mult) * mult, math.ceil(w / mult) * mult
    x = np.stack([normalise_input(im) for im in images])
    x = np.pad(x, ((0, 0), (0, hp - h), (0, wp - w)), mode="reflect" if min(h, w) > 1 else "edge")
    levels = None
    if model.noise_channel:  # FFDNet's noise-level map, one level per image (not per tile)
        levels = torch.tensor([noise_level(im) for im in images] if noise_levels is None else noise_levels,
                              dtype=torch.float32).reshape(n)
    tile = max(mult, (max_tile_px // mult) * mult)
    margin = math.ceil(margin_px / mult) * mult
    rows, cols = _tiles(hp, tile, margin, mult), _tiles(wp, tile, margin, mult)
    maps = np.zeros((n, hp, wp), dtype=np.float32)
    bh, bw = math.ceil(h / mult), math.ceil(w / mult)  # bottleneck cells covering the unpadded image
    spacing = []
    bf16 = use_bf16(model, dev, precision)
    for i0 in range(0, n, batch_size):
        batch = with_noise_channel(torch.from_numpy(x[i0:i0 + batch_size]).unsqueeze(1),
                                   None if levels is None else levels[i0:i0 + batch_size])
        batch = batch.to(dev, memory_format=torch.channels_last)
        feat_sum = 0.0
        for ty, oy0, oy1 in rows:
            for tx, ox0, ox1 in cols:
                # no autocast context at all in float32 (torch < 2.5 rejects an "mps" one even when disabled)
                with torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                    conf, bottom = _d4_forward(model, batch[..., ty:ty + min(tile, hp), tx:tx + min(tile, wp)], tta)
                maps[i0:i0 + len(batch), oy0:oy1, ox0:ox1] = conf[:, 0, oy0 - ty:oy1 - ty, ox0 - tx:ox1 - tx].cpu().numpy()
                if model.spacing is not None:
                    by0, by1 = oy0 // mult, min(oy1 // mult, bh)
                    bx0, bx1 = ox0 // mult, min(ox1 // mult, bw)
                    part = bottom[:, :, by0 - ty // mult:by1 - ty // mult, bx0 - tx // mult:bx1 - tx // mult]
                    feat_sum = feat_sum + part.sum(dim=(2, 3))
        if model.spacing is not None:
            spacing.append(model.spacing_from_pooled(feat_sum / (bh * bw)).cpu().numpy())
    return maps[:, :h, :w], (np.concatenate(spacing) if spacing else None)
