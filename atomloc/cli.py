"""Command line: ``atomloc locate``, ``atomloc restore``, ``atomloc chemistry`` and ``atomloc methods``."""

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
                       model=weights, tta=args.tta, name=str(args.image))
    elapsed = time.perf_counter() - t0
    write_image(args.out, restored)
    print(f"{args.image}: restored by {restoration} in {elapsed:.2f} s -> {args.out}", file=sys.stderr)
    return 0


def _edx_argument(text: str) -> tuple[str, str]:
    """``Mo=EDX_Mo.tif`` -> (Mo, EDX_Mo.tif); ``EDX_Mo.tif`` -> the element from the stem's last ``_`` / ``-`` part."""
    from pathlib import Path

    from ase.data import atomic_numbers

    if "=" in text:
        element, path = text.split("=", 1)
    else:
        path = text
        element = Path(text).stem.replace("-", "_").split("_")[-1]
    if element not in atomic_numbers:
        raise AtomlocInputError(f"{text}: cannot tell the element (write ELEMENT=PATH, e.g. Mo=EDX_Mo.tif)")
    return element, path


def _cmd_chemistry(args) -> int:
    import numpy as np

    from atomloc.analysis.chemistry import field_chemistry, material_sites
    from atomloc.io.files import check_writable
    from atomloc.io.images import read_image, write_image
    from atomloc.io.positions import read_positions, write_positions
    from atomloc.locate.registry import get_method, locate

    maps = [_edx_argument(t) for t in args.edx]
    elements = [e for e, _ in maps]
    if len(set(elements)) != len(elements):
        raise AtomlocInputError(f"one EDX map per element (got {', '.join(elements)})")
    if not args.sites and not args.material:
        raise AtomlocInputError("name the pristine columns: --sites Mo S2 (or --material MoS2)")
    sites = list(args.sites) if args.sites else material_sites(args.material)
    if args.positions is None:
        get_method(args.method)
    check_writable(args.out)
    if args.maps_out:
        from pathlib import Path

        from atomloc.io.images import IMAGE_OUTPUT_SUFFIXES

        if Path(args.maps_out).suffix.lower() not in IMAGE_OUTPUT_SUFFIXES:
            raise AtomlocInputError(f"--maps-out {args.maps_out}: use one of {', '.join(IMAGE_OUTPUT_SUFFIXES)}")
        check_writable(args.maps_out)
    haadf = read_image(args.haadf)
    edx = []
    for element, path in maps:
        image = read_image(path)
        if image.shape != haadf.shape:
            raise AtomlocInputError(f"{path}: {image.shape} pixels, the HAADF {args.haadf} has {haadf.shape}")
        if (image < 0).any():
            raise AtomlocInputError(f"{path}: an EDX map must hold counts >= 0")
        edx.append(image)
    t0 = time.perf_counter()
    if args.positions is not None:
        located = read_positions(args.positions)
    else:
        located = locate(haadf, args.method, pixel_size_pm=args.pixel_size_pm, name=str(args.haadf))
    fused, columns = field_chemistry(haadf, np.stack(edx), elements, x_px=located["x"], y_px=located["y"],
                                     sites=sites, dopants=args.dopants, dopant_host=args.dopant_host or "",
                                     vacancy_element=args.vacancy or "", classify_from=args.classify_from,
                                     edx_delocalisation_A=args.edx_delocalisation_A,
                                     pixel_size_pm=args.pixel_size_pm, maps=args.maps)
    elapsed = time.perf_counter() - t0
    write_positions(args.out, columns)
    if args.maps_out:
        write_image(args.maps_out, fused.astype(np.float32))
    counts = columns["composition"].value_counts().to_dict()
    print(f"{args.haadf}: {len(columns)} columns ({', '.join(f'{k} {v}' for k, v in counts.items())}) in "
          f"{elapsed:.2f} s -> {args.out}", file=sys.stderr)
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
    r.add_argument("--tta", action="store_true",
                   help="average a learned step over the eight rotations and mirror images of the image (8x its time)")
    r.add_argument("--out", required=True, help="output image, float32 .tif/.tiff or .npy, in the input's units")
    r.set_defaults(func=_cmd_restore)

    c = sub.add_parser("chemistry", help="fuse a HAADF image with EDX maps and name the element of every column")
    c.add_argument("haadf", help="HAADF image (as for locate)")
    c.add_argument("edx", nargs="+", metavar="[ELEMENT=]EDX_MAP",
                   help="one EDX count map per element, registered to the HAADF (EDX_Mo.tif, or Mo=map.tif)")
    c.add_argument("--sites", nargs="+", default=None,
                   help="compositions of the pristine crystal's columns, e.g. Mo S2")
    c.add_argument("--material", default=None, help="or a material of atomloc's structures (e.g. MoS2)")
    c.add_argument("--dopants", nargs="*", default=[], help="elements that may replace atoms of --dopant-host")
    c.add_argument("--dopant-host", default=None, help="the element dopants replace")
    c.add_argument("--vacancy", default=None, help="the element of which a column may miss one atom")
    c.add_argument("--method", default="gaussfit", help="locate method run on the HAADF (see `atomloc methods`)")
    c.add_argument("--positions", default=None, help="a positions CSV (x, y in pixels) instead of locating")
    c.add_argument("--classify-from", choices=("blur", "fused", "raw"), default="blur",
                   help="the maps whose column sums are classified, with each column's HAADF sum (default blur: "
                        "the benchmark's best route)")
    c.add_argument("--pixel-size-pm", type=float, default=None, help="pixel size in pm")
    c.add_argument("--edx-delocalisation-A", type=float, default=None,
                   help="FWHM of the EDX delocalisation, Å (with --pixel-size-pm: the fusion blurs the HAADF by it)")
    c.add_argument("--maps", choices=("fused", "column"), default="fused",
                   help="the maps --maps-out writes: fused (the fusion objective) or column (one Gaussian per "
                        "column, amplitudes from the counts pooled by the columns' compositions; the best maps "
                        "of the benchmark where the columns are located)")
    c.add_argument("--maps-out", default=None, help="write the maps (n, H, W) to this .npy / .tif")
    c.add_argument("--out", required=True,
                   help="output CSV: x, y (pixels), signal_<element>, composition, site, dopant, vacancy")
    c.set_defaults(func=_cmd_chemistry)

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
