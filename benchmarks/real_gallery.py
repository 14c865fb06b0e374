"""Every method, with its defaults, on real HAADF images: overlays, counts and a label-free sanity figure.

    python benchmarks/real_gallery.py                                  # ../shared/real/atomidnet_demo, classical
    python benchmarks/real_gallery.py --images DIR --methods gaussfit log --out results/real_gallery
    python benchmarks/real_gallery.py --methods gaussfit gaussfit@denoise_bg gaussfit@bm3d --out results/real_gallery_restored
    python benchmarks/real_gallery.py --methods atomid atomid:tta     # ':tta': D4 test-time averaging

For each image the column spacing is estimated once (``estimate_spacing``) and
each method runs as ``atomloc locate IMAGE --method M`` would.  The table gives
per image and method the number of detections and the sanity figure of
:func:`atomloc.analysis.metrics.spacing_sanity`: the fraction of detections
whose nearest-neighbour distance lies within +-30 % of the spacing (no labels
needed).  One figure per image (``<out>/<image>.png``) overlays every method's
detections on a crop of ``--crop`` pixels; a restore-then-locate method (``M@R``) is
drawn on the restored image (what ``atomloc restore IMAGE --model R`` writes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atomloc.analysis.metrics import spacing_sanity  # noqa: E402
from atomloc.core.errors import AtomlocInputError  # noqa: E402
from atomloc.io.images import read_image  # noqa: E402
from atomloc.locate import locate, restore  # noqa: E402
from atomloc.locate.registry import get_method, split_method  # noqa: E402
from atomloc.locate.spacing import estimate_spacing  # noqa: E402
from atomloc.plotting import plot_detection_panels  # noqa: E402
from benchmarks.foreign import method_call  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLASSICAL = ["threshold_centroid", "log", "dog", "doh", "findfoci", "gaussfit", "rl_gaussfit"]
IMAGE_SUFFIXES = {".bmp", ".png", ".tif", ".tiff", ".npy", ".dm3", ".dm4", ".emd"}


def gallery(images: list[Path], methods: list[str], out: Path | None, crop_px: int) -> pd.DataFrame:
    """Run every method on every image; write the overlays into ``out`` (if given); return the table."""
    rows = []
    for path in images:
        image = read_image(path)
        try:
            spacing = estimate_spacing(image, name=str(path))
        except AtomlocInputError as exc:
            print(exc, file=sys.stderr)
            continue
        panels = []
        for method in methods:
            t0 = time.perf_counter()
            try:
                # the spacing estimated once for the methods that take it; the learned ones find their own
                base, options = method_call(method)
                given = {"spacing_px": spacing} if get_method(base).needs_spacing else {}
                found = locate(image, base, name=str(path), **given, **options)
            except AtomlocInputError as exc:
                print(f"{path.name}: {method}: {exc}", file=sys.stderr)
                continue
            xy = found[["x", "y"]].to_numpy()
            rows.append({"image": path.name, "spacing_px": round(spacing, 2), "method": method, "n": len(found),
                         "within_30pct": round(spacing_sanity(xy, spacing), 3),
                         "seconds": round(time.perf_counter() - t0, 2)})
            inside = (xy[:, 0] < crop_px - 0.5) & (xy[:, 1] < crop_px - 0.5)
            chain = split_method(base)[1]
            shown = image if chain is None else restore(image, chain, spacing, name=str(path))
            panels.append({"image": shown[:crop_px, :crop_px], "pred_xy": xy[inside],
                           "title": f"{method}: {len(found)} columns, {rows[-1]['within_30pct']:.2f} within 30 %"})
        if out is not None and panels:
            out.mkdir(parents=True, exist_ok=True)
            plot_detection_panels(panels, out / f"{path.stem}.png",
                                  suptitle=f"{path.name} (spacing {spacing:.1f} px; top-left {crop_px} px)")
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "real" / "atomidnet_demo",
                        help="folder of real images (or one image)")
    parser.add_argument("--methods", nargs="+", default=CLASSICAL)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "real_gallery", help="folder of the overlays")
    parser.add_argument("--crop", type=int, default=256, help="side of the overlaid crop, pixels")
    args = parser.parse_args(argv)
    if args.images.is_dir():
        images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        images = [args.images]
    if not images:
        print(f"{args.images}: no images found", file=sys.stderr)
        return 1
    table = gallery(images, args.methods, args.out, args.crop)
    print(table.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
