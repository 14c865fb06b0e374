from _common import start_log

import json

import torch

from atomloc.io.files import atomic_path
from atomloc.io.training import read_library, read_training_pairs
from atomloc.learn.data import TrainingSet, library_set, series_set
from atomloc.learn.spec import TrainSpec
from atomloc.learn.train import train_model
from atomloc.locate.nets.models import save_checkpoint

log = start_log(snakemake)  # noqa: F821
torch.set_num_threads(snakemake.threads)
spec = TrainSpec.from_mapping(snakemake.params.train, name=f"models.{snakemake.wildcards.model}.train")
parts, sources, extra = [], {}, {}
if "library" in snakemake.input.keys():
    library = read_library(snakemake.input.library)
    parts.append(library_set(library, spec))
    sources["library"] = snakemake.input.library
    # the library's settings: inference reads the spacing band from here (atomloc.locate.learned.trained_band)
    extra["library"] = json.loads(library["attrs"]["spec"])
for path in snakemake.input.get("pairs", []):
    frames, positions, attrs = read_training_pairs(path)
    parts.append(series_set(frames, positions, attrs["pixel_size_pm"], spec, name=path))
    sources.setdefault("series", {})[path] = attrs.get("label_source", "")
data = TrainingSet.concat(parts)
log.info("training %s on %d images (%s)", spec.architecture, len(data), ", ".join(sources))
model, history, summary = train_model(data, spec, log=log)
with atomic_path(snakemake.output.history) as tmp:
    history.to_csv(tmp, index=False, float_format="%.6g")
summary["n_images_by_source"] = summary.pop("sources")
save_checkpoint(snakemake.output.model, model, spec.architecture,
                {"training": {**summary, "sources": sources}, **extra})
log.info("best epoch %d, validation F1 %.4f", summary["best_epoch"], summary["val_f1"])
