"""Writing a run's time series: CSV (standard library) or Parquet (pyarrow, imported only when asked for).

Long format, one row per (record time, spacecraft): time_s, utc, spacecraft, soc, temperature_k, stored_bytes,
activity, in_eclipse, in_contact, isl_contact. The format is chosen by the file's extension.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import numpy as np

from skymesh.core.errors import InvalidArgument
from skymesh.sim.engine import SimResult

__all__ = ["COLUMNS", "timeseries_columns", "write_timeseries"]

COLUMNS = ("time_s", "utc", "spacecraft", "soc", "temperature_k", "stored_bytes", "activity", "in_eclipse",
           "in_contact", "isl_contact")  # fmt: skip


def timeseries_columns(result: SimResult) -> dict[str, np.ndarray]:
    """Column arrays of the long table (time-major)."""
    n_t, n = result.soc.shape
    times = np.repeat(result.times_s, n)
    utc = np.array([(result.epoch + timedelta(seconds=float(t))).isoformat() for t in result.times_s])
    names = np.array(result.names, dtype=object)
    acts = np.array(result.activity_names, dtype=object)
    return {
        "time_s": times,
        "utc": np.repeat(utc, n),
        "spacecraft": np.tile(names, n_t),
        "soc": result.soc.ravel(),
        "temperature_k": result.temperature_k.ravel(),
        "stored_bytes": result.stored_bytes.ravel(),
        "activity": acts[result.activity.ravel().astype(np.int64)],
        "in_eclipse": result.in_eclipse.ravel(),
        "in_contact": result.in_contact.ravel(),
        "isl_contact": result.isl_contact.ravel(),
    }


def write_timeseries(result: SimResult, path: str | Path) -> Path:
    """Write CSV (`.csv`) or Parquet (`.parquet`/`.pq`); anything else is refused."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InvalidArgument("output must end in .csv or .parquet", field="out")
    cols = timeseries_columns(result)
    if suffix == ".csv":
        with p.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            rows = zip(*(cols[c].tolist() for c in COLUMNS), strict=True)
            writer.writerows(rows)
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InvalidArgument("Parquet output needs pyarrow (pip install 'skymesh[sim]'); or use .csv",
                                  field="out") from None  # fmt: skip

        table = pa.table({c: cols[c].tolist() if cols[c].dtype == object else cols[c] for c in COLUMNS})
        pq.write_table(table, p)
    return p
