"""Command line: ``atomloc locate`` and ``atomloc methods``."""

from __future__ import annotations

import argparse
import sys
import time

import yaml

from atomloc.core.errors import AtomlocInputError
from atomloc.locate.nets import ARCHITECTURES


def _parse_param(text: str):
    if "=" not in text:
        raise AtomlocInputError(f"--param {text!r}: expected key=value")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _cmd_locate(args) -> int:
    from atomloc.io.images import read_image
    from atomloc.io.positions import write_positions
    from atomloc.locate.registry import locate

    params = dict(_parse_param(p) for p in args.param)
    if args.model is not None:
        params["model"] = args.model
    image = read_image(args.image)
    t0 = time.perf_counter()
    positions = locate(image, args.method, pixel_size_pm=args.pixel_size_pm, name=str(args.image), **params)
    elapsed = time.perf_counter() - t0
    write_positions(args.out, positions)
    print(f"{args.image}: {len(positions)} columns by {args.method} in {elapsed:.2f} s -> {args.out}",
          file=sys.stderr)
    return 0


def _cmd_methods(args) -> int:
    from atomloc.locate.registry import available_methods, get_method

    for name in available_methods():
        m = get_method(name)
        missing = m.missing()
        note = f"  [not installed: pip install 'atomloc[{m.extra}]']" if missing else ""
        print(f"{name}: {m.description}{note}")
        for key, value in m.defaults.items():
            print(f"    {key} = {value}")
    print('\n"auto" values are derived from the estimated nearest-neighbour column spacing.')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atomloc", description="Locate atom columns in HAADF-STEM images.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("locate", help="locate atom columns in one image and write x,y (pixels) to CSV")
    p.add_argument("image", help="image file (.tif, .tiff, .png, .bmp, .npy; grey or RGB, 8/16-bit or float)")
    p.add_argument("--method", default="gaussfit", help="registered method (see `atomloc methods`)")
    p.add_argument("--pixel-size-pm", type=float, default=None, help="pixel size in pm (recorded only)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter, repeatable (values parsed as YAML: 3, 0.5, otsu, true)")
    p.add_argument("--model", default=None,
                   help=f"checkpoint of a learned method ({', '.join(ARCHITECTURES)}), e.g. one the "
                        "workflow trained")
    p.add_argument("--out", required=True, help="output CSV with columns x, y (pixels; x = column index)")
    p.set_defaults(func=_cmd_locate)

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
