from _common import start_log

import torch

from atomloc.io.files import atomic_path
from atomloc.learn.data import training_data_from_files
from atomloc.learn.spec import TrainSpec
from atomloc.learn.train import train_model
from atomloc.locate.nets.models import save_checkpoint

log = start_log(snakemake)  # noqa: F821
torch.set_num_threads(snakemake.threads)
name = snakemake.wildcards.get("model") or snakemake.wildcards.get("restoration")
spec = TrainSpec.from_mapping(snakemake.params.train, name=f"models.{name}.train")
data, sources, extra = training_data_from_files(spec, snakemake.input.get("library"), snakemake.input.get("pairs", []))
log.info("training %s on %d images (%s)", spec.architecture, len(data), ", ".join(sources))
model, history, summary = train_model(data, spec, log=log)
with atomic_path(snakemake.output.history) as tmp:
    history.to_csv(tmp, index=False, float_format="%.6g")
summary["n_images_by_source"] = summary.pop("sources")
save_checkpoint(snakemake.output.model, model, spec.architecture,
                {"training": {**summary, "sources": sources}, **extra})
log.info("best epoch %d, validation F1 %.4f, loss %.4g", summary["best_epoch"], summary["val_f1"], summary["val_loss"])
