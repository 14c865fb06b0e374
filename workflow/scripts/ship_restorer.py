from _common import release_commit, start_log

import json

import torch

from atomloc.io.training import read_library
from atomloc.learn.data import library_set
from atomloc.learn.spec import TrainSpec
from atomloc.learn.train import restoration_psnr
from atomloc.locate.nets import RESTORER
from atomloc.locate.nets.models import load_checkpoint, save_checkpoint

log = start_log(snakemake)  # noqa: F821
torch.set_num_threads(snakemake.threads)
name = snakemake.wildcards.restoration
model, meta = load_checkpoint(snakemake.input.model, RESTORER, "cpu")
spec = TrainSpec.from_mapping(meta["training"]["spec"], name=f"release.restorers.{name}.train")
validation = read_library(snakemake.input.validation)
psnr = restoration_psnr(model, library_set(validation, spec))
log.info("validation PSNR: restored %.2f dB, raw %.2f dB over %d images", psnr["restored_db"], psnr["raw_db"],
         psnr["n_images"])
meta.pop("architecture")
# the training library's settings (its spacing band is what inference resamples into)
meta["library"] = json.loads(read_library(snakemake.input.library)["attrs"]["spec"])
meta.update({"restoration": name, "validation": psnr, "validation_library": json.loads(validation["attrs"]["spec"]),
             **release_commit(snakemake.scriptdir),
             "made_by": "snakemake --configfile workflow/configs/release.yaml --cores 2 release"})
save_checkpoint(snakemake.output.model, model, RESTORER, meta)
