from _common import start_log

import pandas as pd

from atomloc.evaluate import evaluate_series
from atomloc.io import atomic_path

log = start_log(snakemake)  # noqa: F821
inp = snakemake.input
tables = []
for series, labels, positions, timing, crlb in zip(inp.series, inp.labels, inp.positions, inp.timing, inp.crlb):
    table = evaluate_series(series, labels, positions, timing, transfer=snakemake.params.transfer,
                            crlb=pd.read_csv(crlb), **snakemake.params.scoring)
    log.info("%s: F1 per frame %s", series, table.loc[table.reference == table.reference.iloc[0], "f1"].round(4)
             .tolist())
    tables.append(table)
table = pd.concat(tables, ignore_index=True)
table.insert(0, "method", snakemake.params.name)
with atomic_path(snakemake.output.metrics) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
