"""Time and peak memory of the spacing estimate and of locate methods vs image size.

    python benchmarks/scaling.py                                   # 512^2 to 8192^2, gaussfit log findfoci atomid
    python benchmarks/scaling.py --sizes 512 1024 2048 --methods log --timeout 300

Each (method, size) runs in a fresh subprocess, so that its peak resident memory
(``VmHWM`` of ``/proc/self/status``, which includes the Python interpreter,
the imports and the image itself) is its own.  The image is a Poisson square lattice
(as :func:`atomloc.testing.square_lattice`, spacing 8 px, 10 degrees) written once
per size to a temporary ``.npy`` (float32) that the subprocess reads.  The
``spacing`` rows time :func:`atomloc.locate.spacing.estimate_spacing` alone; the
method rows time :func:`atomloc.locate.registry.locate` with everything it does
(the spacing estimate included).  ``x time`` and ``x mem`` are relative to the
1024^2 row of the same method; ``columns`` is the number found over the number
of lattice sites in the image.

A subprocess that runs past ``--timeout`` seconds is stopped and its row says
so; ``--mem-limit-gb`` caps its address space (a method needing more fails with
``MemoryError`` instead of pushing a shared machine into swap).  The issue 21
budget: the 8192^2 row within 10x the time and 4 GB of peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPACING_PX = 8.0
ANGLE_DEG = 10.0

_CHILD = r"""
import json, resource, sys, time
import numpy as np
limit = float(sys.argv[3])
if limit > 0:
    resource.setrlimit(resource.RLIMIT_AS, (int(limit * 2**30), int(limit * 2**30)))

def peak_kb():
    # VmHWM: this process's own high-water mark (ru_maxrss carries the parent's over fork and exec)
    try:
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

from atomloc.locate.registry import locate
from atomloc.locate.spacing import estimate_spacing
method, path = sys.argv[1], sys.argv[2]
image = np.load(path).astype(np.float64)
base = peak_kb()
t0 = time.perf_counter()
if method == "spacing":
    n, extra = 1, float(estimate_spacing(image))
else:
    found = locate(image, method)
    n, extra = len(found), None
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "peak_kb": peak_kb(), "base_kb": base, "n": n, "spacing": extra}))
"""


def make_image(size: int, folder: Path) -> tuple[Path, int]:
    """Write the benchmark lattice of side ``size`` as float32 .npy; return its path and its number of columns.

    As :func:`atomloc.testing.square_lattice` (columns of sigma 0.2 x spacing, 200 counts over a
    background of 5, Poisson noise), rendered in bands of 512 rows so that 8192^2 needs no more
    memory than the image.
    """
    from atomloc.simulate.render import render_columns

    rng = np.random.default_rng(1)
    n = int(np.ceil(1.5 * size / SPACING_PX)) + 2
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    t = np.deg2rad(ANGLE_DEG)
    x = SPACING_PX * (ii * np.cos(t) - jj * np.sin(t)) + size / 2 + rng.uniform(0, 1)
    y = SPACING_PX * (ii * np.sin(t) + jj * np.cos(t)) + size / 2 + rng.uniform(0, 1)
    keep = (x > -SPACING_PX) & (x < size + SPACING_PX) & (y > -SPACING_PX) & (y < size + SPACING_PX)
    x, y = x[keep], y[keep]
    image = np.empty((size, size), dtype=np.float32)
    band = 512
    for top in range(0, size, band):
        rows = min(band, size - top)
        sel = (y > top - 2 * SPACING_PX) & (y < top + rows + 2 * SPACING_PX)
        clean = 5.0 + render_columns((rows, size), x[sel], y[sel] - top, np.full(int(sel.sum()), 200.0),
                                     0.2 * SPACING_PX)
        image[top:top + rows] = rng.poisson(clean)
    path = folder / f"lattice_{size}.npy"
    np.save(path, image)
    inside = (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)
    return path, int(inside.sum())


def run_one(method: str, path: Path, timeout: float, mem_limit_gb: float) -> dict:
    """Run one method on one image in a subprocess; its seconds, peak memory and count (or why it failed)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    try:
        res = subprocess.run([sys.executable, "-c", _CHILD, method, str(path), str(mem_limit_gb)],
                             capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"> {timeout:.0f} s (stopped)"}
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        if "MemoryError" in last:
            return {"error": f"> {mem_limit_gb:g} GiB (MemoryError at the --mem-limit-gb cap): {last[-40:]}"}
        return {"error": last[:80]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[512, 1024, 2048, 4096, 8192], help="image sides, px")
    p.add_argument("--methods", nargs="*", default=["spacing", "gaussfit", "log", "findfoci", "atomid"],
                   help="'spacing' (the estimate alone) and registered methods")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per (method, size) run (default 600)")
    p.add_argument("--mem-limit-gb", type=float, default=8.0,
                   help="address-space cap per run, GiB (0: none; default 8)")
    args = p.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        images = {size: make_image(size, Path(tmp)) for size in args.sizes}
        for method in args.methods:
            for size in args.sizes:
                path, n_true = images[size]
                r = run_one(method, path, args.timeout, args.mem_limit_gb)
                rows.append({"method": method, "size": size, "n_true": n_true, **r})
                print(_line(rows[-1], rows), flush=True)
    print()
    print(_table(rows))
    return 0


def _ref(row: dict, rows: list) -> dict | None:
    return next((r for r in rows if r["method"] == row["method"] and r["size"] == 1024 and "error" not in r), None)


def _line(row: dict, rows: list) -> str:
    if "error" in row:
        return f"{row['method']:>9} {row['size']:>5}^2  {row['error']}"
    ref = _ref(row, rows)
    peak_gb = row["peak_kb"] / 2**20
    rel_t = f"{row['seconds'] / ref['seconds']:6.1f}x" if ref else "      -"
    rel_m = f"{row['peak_kb'] / ref['peak_kb']:5.1f}x" if ref else "     -"
    what = (f"spacing {row['spacing']:.3f} px" if row["method"] == "spacing"
            else f"{row['n']:>8} / {row['n_true']} columns")
    return (f"{row['method']:>9} {row['size']:>5}^2  {row['seconds']:8.2f} s {rel_t}  "
            f"peak {peak_gb:6.2f} GB {rel_m}  (image + imports {row['base_kb'] / 2**20:5.2f} GB)  {what}")


def _table(rows: list) -> str:
    head = f"{'method':>9} {'size':>7}  {'time':>10} {'x time':>7}  {'peak memory':>12} {'x mem':>6}"
    return "\n".join([head] + [_line(r, rows) for r in rows])


if __name__ == "__main__":
    sys.exit(main())
