from _common import start_log

import json
from pathlib import Path

import pandas as pd

from atomloc.analysis.evaluate import evaluate_series
from atomloc.analysis.tables import read_table_or_empty
from atomloc.core.errors import AtomlocInputError
from atomloc.io.files import atomic_path
from atomloc.io.positions import read_positions
from atomloc.io.series import read_series

log = start_log(snakemake)  # noqa: F821
inp = snakemake.input
tables = []
for series, labels, positions, timing, crlb, column_crlb, scoring in zip(
        inp.series, inp.labels, inp.positions, inp.timing, inp.crlb, inp.column_crlb, snakemake.params.scoring):
    try:
        table = evaluate_series(read_series(series), read_positions(labels), read_positions(positions),
                                json.loads(Path(timing).read_text())["seconds"], transfer=snakemake.params.transfer,
                                crlb=pd.read_csv(crlb), column_crlb=read_table_or_empty(column_crlb), **scoring)
    except AtomlocInputError as exc:
        raise AtomlocInputError(f"{positions}: {exc}") from None
    log.info("%s: F1 per frame %s", series, table.loc[table.reference == table.reference.iloc[0], "f1"].round(4)
             .tolist())
    tables.append(table)
table = pd.concat(tables, ignore_index=True)
table.insert(0, "method", snakemake.params.name)
with atomic_path(snakemake.output.metrics) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
