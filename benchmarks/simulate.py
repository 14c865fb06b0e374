"""Seconds per 512 x 512 frame of the simulator: the linear model and the PRISM validation path.

Run: python benchmarks/simulate.py [--frames N]

Both render the same MoS2 series (300 kV, 25 mrad, defocus in [-5, 5] nm, drift, scan
distortion and jitter, Poisson noise).  PRISM computes abTEM's HAADF image of one periodic
cell per frame (its defocus) and samples it at the frame's scan positions; the linear model
renders every column through the abTEM probe.  Target: linear <= 2 s per frame on 2 cores.
"""

import argparse
import time

from atomloc.simulate import SeriesSpec, simulate_series


def seconds_per_frame(spec: SeriesSpec) -> float:
    t0 = time.perf_counter()
    simulate_series(spec)
    return (time.perf_counter() - t0) / spec.n_frames


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="frames per series (default 4)")
    parser.add_argument("--skip-prism", action="store_true", help="time the linear model only")
    args = parser.parse_args(argv)
    base = dict(material="MoS2", shape_px=(512, 512), pixel_size_pm=20.0, n_frames=args.frames,
                defocus_nm=(-5.0, 5.0), seed=0)
    simulate_series(SeriesSpec(**{**base, "n_frames": 1}))  # imports (abTEM, dask) outside the timing
    linear = seconds_per_frame(SeriesSpec(**base))
    print(f"linear model: {linear:.2f} s per 512x512 frame (target <= 2 s)")
    if not args.skip_prism:
        prism = seconds_per_frame(SeriesSpec(**base, simulator="prism"))
        print(f"PRISM (abTEM, periodic cell): {prism:.1f} s per 512x512 frame = {prism / linear:.0f}x linear")


if __name__ == "__main__":
    main()
