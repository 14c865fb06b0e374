"""Command line: ``atomloc locate``, ``atomloc restore`` and ``atomloc methods``."""

from __future__ import annotations

import argparse
import sys
import time

import yaml

from atomloc.core.errors import AtomlocInputError
from atomloc.locate.nets import ARCHITECTURES


def _parse_value(text: str):
    """A parameter value: a number where the text is one (``1e9`` too, which YAML 1.1 leaves a
    string), else YAML (``true``, ``null``, ``[1, 2]``, ``otsu``)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _parse_param(text: str):
    if "=" not in text:
        raise AtomlocInputError(f"--param {text!r}: expected key=value")
    key, value = text.split("=", 1)
    return key.strip(), _parse_value(value.strip())


def _parse_frame(text: str | None):
    if text is None or text == "all":
        return text
    try:
        frame = int(text)
    except ValueError:
        frame = -1
    if frame < 0:
        raise AtomlocInputError(f"--frame {text!r}: expected a frame index (0, 1, ...) or all")
    return frame


def _cmd_locate(args) -> int:
    from atomloc.io.files import check_writable
    from atomloc.io.images import read_image, read_stack
    from atomloc.io.positions import write_positions
    from atomloc.locate.registry import get_method, locate, locate_series

    params = dict(_parse_param(p) for p in args.param)
    if args.model is not None:
        params["model"] = args.model
    if args.spacing_px is not None:
        params["spacing_px"] = args.spacing_px
    get_method(args.method).resolve(params)  # every parameter checked before any work
    frame = _parse_frame(args.frame)
    check_writable(args.out)
    if frame == "all":
        frames = read_stack(args.image)
        t0 = time.perf_counter()
        positions, _ = locate_series(frames, args.method, pixel_size_pm=args.pixel_size_pm, name=str(args.image),
                                     columns=args.columns, **params)
        what = f"{len(positions)} columns in {len(frames)} frames"
    else:
        image = read_image(args.image, frame=frame)
        t0 = time.perf_counter()
        positions = locate(image, args.method, pixel_size_pm=args.pixel_size_pm, name=str(args.image),
                           columns=args.columns, **params)
        what = f"{len(positions)} columns" + ("" if frame is None else f" in frame {frame}")
    elapsed = time.perf_counter() - t0
    write_positions(args.out, positions)
    print(f"{args.image}: {what} by {args.method} in {elapsed:.2f} s -> {args.out}", file=sys.stderr)
    return 0


def _cmd_restore(args) -> int:
    from atomloc.io.files import check_writable
    from atomloc.io.images import read_image, write_image
    from atomloc.locate import restore

    from atomloc.locate.registry import available_restorations, get_restorations

    # --model names a restoration (denoise_bg, bm3d+bg) or, as for `atomloc locate`, a checkpoint file
    restoration, weights = args.restoration, "auto"
    if args.model is not None:
        names = args.model.split("+")
        if all(n in available_restorations() for n in names):
            if args.restoration is not None and args.restoration != args.model:
                raise AtomlocInputError(f"--model {args.model} and --restoration {args.restoration}: name one")
            restoration = args.model
        else:
            weights = args.model
    restoration = restoration or "denoise_bg"
    get_restorations(restoration)  # checked before any work
    frame = _parse_frame(args.frame)
    if frame == "all":
        raise AtomlocInputError("--frame all: restore one frame at a time (--frame K)")
    check_writable(args.out)
    image = read_image(args.image, frame=frame)
    t0 = time.perf_counter()
    restored = restore(image, restoration, args.spacing_px if args.spacing_px is not None else "auto",
                       model=weights, name=str(args.image))
    elapsed = time.perf_counter() - t0
    write_image(args.out, restored)
    print(f"{args.image}: restored by {restoration} in {elapsed:.2f} s -> {args.out}", file=sys.stderr)
    return 0


def _cmd_methods(args) -> int:
    from atomloc.locate.registry import available_methods, get_method

    for name in available_methods():
        m = get_method(name)
        missing = m.missing()
        note = f"  [not installed: pip install 'atomloc[{m.extra}]']" if missing else ""
        print(f"{name}: {m.description}{note}")
        for key, value in m.defaults.items():
            print(f"    {key} = {value}  ({m.params[key].describe()})")
    print('\n"auto" values are derived from the estimated nearest-neighbour column spacing.')
    from atomloc.locate.registry import available_restorations, get_restorations

    print("\nrestorations (atomloc restore IMAGE --restoration NAME; locate with --method METHOD@NAME; chain with +):")
    for name in available_restorations():
        print(f"{name}: {get_restorations(name)[0].description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atomloc", description="Locate atom columns in HAADF-STEM images.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("locate", help="locate atom columns in one image and write x,y (pixels) to CSV")
    p.add_argument("image", help="image file (.tif, .tiff, .png, .bmp, .npy; grey or RGB, 8/16-bit or float)")
    p.add_argument("--method", default="gaussfit", help="registered method (see `atomloc methods`)")
    p.add_argument("--pixel-size-pm", type=float, default=None, help="pixel size in pm (recorded only)")
    p.add_argument("--frame", default=None, metavar="K|all",
                   help="frame of a stack (.tif, .npy, .dm3, .emd ...), counted from 0; all: every frame, with a "
                        "frame column in the output")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter, repeatable (values parsed as YAML: 3, 0.5, otsu, true)")
    p.add_argument("--spacing-px", type=float, default=None,
                   help="nearest-neighbour column spacing in pixels (default: estimated from the image)")
    p.add_argument("--columns", choices=("all", "heavy"), default="all",
                   help="all columns, or only the brightest sublattice (heavy: e.g. the metal columns of MoS2)")
    p.add_argument("--model", default=None,
                   help=f"checkpoint of a learned method ({', '.join(ARCHITECTURES)}), e.g. one the "
                        "workflow trained (default: the pretrained weights shipped in the package)")
    p.add_argument("--out", required=True,
                   help="output CSV with columns x, y (pixels; x = column index), intensity, sublattice (0 = brightest)")
    p.set_defaults(func=_cmd_locate)

    r = sub.add_parser("restore", help="restore one image (denoise, remove the background, deblur) and write it")
    r.add_argument("image", help="image file (as for locate)")
    r.add_argument("--restoration", default=None,
                   help="denoise, denoise_bg (default), superres (U-Nets, shipped weights), nl_means, tv, wavelet, "
                        "bm3d, rl, bg, or a chain such as bm3d+bg (see `atomloc methods`)")
    r.add_argument("--model", default=None,
                   help="a restoration name (as --restoration), or the checkpoint of a restorer for the learned step "
                        "(default: the weights shipped in the package)")
    r.add_argument("--frame", default=None, metavar="K", help="frame of a stack, counted from 0")
    r.add_argument("--spacing-px", type=float, default=None,
                   help="nearest-neighbour column spacing in pixels (default: estimated from the image)")
    r.add_argument("--out", required=True, help="output image, float32 .tif/.tiff or .npy, in the input's units")
    r.set_defaults(func=_cmd_restore)

    m = sub.add_parser("methods", help="list registered methods with their parameters and defaults")
    m.set_defaults(func=_cmd_methods)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AtomlocInputError as exc:
        print(f"atomloc: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
