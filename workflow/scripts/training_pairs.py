from _common import start_log

from atomloc.io.positions import read_positions
from atomloc.io.series import read_series
from atomloc.io.training import write_training_pairs
from atomloc.series.label import training_positions

log = start_log(snakemake)  # noqa: F821
series = read_series(snakemake.input.series)
source = snakemake.params.source
positions = training_positions(series, read_positions(snakemake.input.labels), source, snakemake.params.transfer,
                               name=snakemake.input.series)
write_training_pairs(snakemake.output.pairs, series.frames, positions, source,
                     attrs={"pixel_size_pm": series.attrs["pixel_size_pm"],
                            "material": series.attrs.get("material", ""),
                            "transfer": snakemake.params.transfer if source == "reference" else ""})
log.info("%d frames, %d label positions from %s", series.n_frames, len(positions), source)
