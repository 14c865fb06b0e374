from _common import start_log

import json
from dataclasses import asdict

from atomloc.io.training import write_library
from atomloc.simulate.library import LibrarySpec, synthesize_library

log = start_log(snakemake)  # noqa: F821
spec = LibrarySpec.from_mapping(snakemake.params.spec, name="library")
library = synthesize_library(spec, progress=True)
write_library(snakemake.output.library, library, attrs={"spec": json.dumps(asdict(spec), sort_keys=True)})
log.info("%d images of %s px from %d structures", len(library["images"]), spec.shape_px, len(set(spec.structures)))
