from _common import release_commit, start_log

import json

import torch

from atomloc.io.training import read_library
from atomloc.learn.data import library_set
from atomloc.learn.spec import TrainSpec
from atomloc.learn.train import calibrate_operating_point
from atomloc.locate.nets.models import load_checkpoint, save_checkpoint

log = start_log(snakemake)  # noqa: F821
torch.set_num_threads(snakemake.threads)
model, meta = load_checkpoint(snakemake.input.model, snakemake.wildcards.model, "cpu")
spec = TrainSpec.from_mapping(meta["training"]["spec"], name=f"release.models.{snakemake.wildcards.model}.train")
validation = read_library(snakemake.input.validation)
point = calibrate_operating_point(model, library_set(validation, spec), spec)
log.info("operating point %s", {k: v for k, v in point.items() if k not in ("grid", "f1")})
meta.pop("architecture")
# the training library's settings (its spacing band is what inference resamples into)
meta["library"] = json.loads(read_library(snakemake.input.library)["attrs"]["spec"])
# the shipped weights meet data foreign to their library: their detections are gated by the noise
inference = {"spacing_px": float(snakemake.params.inference_spacing_px), "noise_gate": True}
meta.update({"operating_point": point, "inference": inference, "validation_library": json.loads(validation["attrs"]["spec"]),
             **release_commit(snakemake.scriptdir), "made_by": "snakemake --configfile workflow/configs/release.yaml --cores 2 release"})
save_checkpoint(snakemake.output.model, model, snakemake.wildcards.model, meta)
