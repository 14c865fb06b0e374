"""F1 of the learned methods on structures held out of their training library.

    python benchmarks/held_out.py                       # the held-out structures of config.yaml
    python benchmarks/held_out.py --structures graphene NiO_001 --frames 8

The held-out structures are the periodic ones of ``atomloc.simulate.structures.MATERIALS``
missing from ``library.structures`` in the config (default config: MoS2_bilayer,
whose monolayer is in the library, graphene and NiO_001); none appears in the
train-split series either.  For each, a series
is simulated with the workflow's simulator (spacing about 9-10 px, the default
datasets' dose range, drift and scan distortion on) and every method below
locates the columns of every frame; F1 and RMSE are against the truth, with the
workflow's matching rules.  gaussfit is the classical reference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atomloc.analysis.metrics import score_detections  # noqa: E402
from atomloc.locate.registry import get_method, locate  # noqa: E402
from atomloc.simulate.series import SeriesSpec, simulate_series  # noqa: E402
from atomloc.simulate.structures import MATERIALS  # noqa: E402

# pixel size (pm) giving a nearest-neighbour column spacing of about 9-10 px
PIXEL_SIZE_PM = {"graphene": 15.0, "hBN": 15.0, "NiO_001": 20.0, "Pt_001": 20.0, "Au_001": 20.0,
                 "SrTiO3_001": 20.0, "TiO2_001": 15.0}


def held_out(config_path: Path) -> list[str]:
    config = yaml.safe_load(config_path.read_text())
    return [m for m in MATERIALS if m not in config["library"]["structures"]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--structures", nargs="*", default=None)
    p.add_argument("--methods", nargs="*", default=["atomid", "atomsegnet", "gaussfit"])
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args(argv)
    structures = args.structures or held_out(Path(args.config))
    rows = []
    for k, name in enumerate(structures):
        px = PIXEL_SIZE_PM.get(name, 15.0)
        series = simulate_series(SeriesSpec(material=name, shape_px=(args.size, args.size), pixel_size_pm=px,
                                            n_frames=args.frames, rotation_deg=17.0 + 11 * k,
                                            dose_e_per_A2=(2e4, 2e5), seed=100 + k))
        for method in args.methods:
            get_method(method).load()
            for f, frame in enumerate(series.frames):
                truth = np.column_stack([series.truth.x[f], series.truth.y[f]])
                pos = locate(frame, method)
                s = score_detections(pos[["x", "y"]].to_numpy(), truth, frame.shape, pixel_size_pm=px)
                rows.append({"structure": name, "method": method, "frame": f, "f1": s.f1, "rmse_pm": s.rmse_pm})
    table = pd.DataFrame(rows).groupby(["structure", "method"], sort=False).agg(
        f1_mean=("f1", "mean"), f1_min=("f1", "min"), rmse_pm=("rmse_pm", "mean")).reset_index()
    print(f"\nheld out of the training library: {', '.join(structures)}; {args.frames} frames of "
          f"{args.size}^2 px each\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
