"""Writing a run: its time series and its events, as CSV or Parquet, streamed in blocks.

Time series, long format, one row per (record time, spacecraft): time_s, utc, spacecraft, soc, temperature_k,
stored_bytes, activity, in_eclipse, in_contact, isl_contact. `SeriesWriter` takes the series one satellite chunk at
a time (`Simulation.run(series_sink=...)`), so a 10,000-satellite day never sits in memory as one table: each chunk
becomes Parquet row groups of at most `ROWS_PER_BLOCK` rows (time-major inside the chunk; spacecraft and activity
dictionary-encoded, utc a UTC timestamp) or CSV lines. Rows are grouped by satellite chunk; sort by (time_s,
spacecraft) when reading if the order matters.

Events, one row per edge: time_s, utc, spacecraft, kind (eclipse, contact, isl, activity, restart, failure), edge
(start or end), detail (the station, link partner or activity). An activity change is two rows: the old activity's
end and the new one's start.

The format follows the file's extension. CSV needs only the standard library; with pyarrow installed it is written
through pyarrow (several times faster). Parquet needs pyarrow (`pip install 'skymesh[sim]'`), imported only here.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skymesh.core.errors import InvalidArgument
from skymesh.sim.engine import SERIES_KEYS, EventKind, SimResult

__all__ = [
    "COLUMNS", "EVENT_COLUMNS", "SeriesWriter", "event_codes", "event_columns", "write_events", "write_timeseries",
]  # fmt: skip

COLUMNS = ("time_s", "utc", "spacecraft", "soc", "temperature_k", "stored_bytes", "activity", "in_eclipse",
           "in_contact", "isl_contact")  # fmt: skip
EVENT_COLUMNS = ("time_s", "utc", "spacecraft", "kind", "edge", "detail")
ROWS_PER_BLOCK = 1_000_000


def _format(path: str | Path) -> tuple[Path, str]:
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InvalidArgument("output must end in .csv or .parquet", field="out")
    return p, "csv" if suffix == ".csv" else "parquet"


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
    except ImportError:
        return None
    return pa


class SeriesWriter:
    """Streams time-series chunks to CSV or Parquet. Use as a context manager; `write` once per satellite chunk."""

    def __init__(self, path: str | Path, names: Sequence[str], activity_names: Sequence[str], epoch: datetime) -> None:
        self.path, self.kind = _format(path)
        self.names = list(names)
        self.activity_names = list(activity_names)
        self.epoch = epoch
        self.rows = 0
        self._pa = _pyarrow()
        if self.kind == "parquet" and self._pa is None:
            raise InvalidArgument("Parquet output needs pyarrow (pip install 'skymesh[sim]'); or use .csv", field="out")
        self._writer: Any = None
        self._fh: Any = None

    def __enter__(self) -> SeriesWriter:
        pa = self._pa
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self.path, self._schema())
        elif pa is not None:
            import pyarrow.csv as pcsv

            self._writer = pcsv.CSVWriter(self.path, self._schema())
        else:
            self._fh = self.path.open("w", newline="")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(COLUMNS)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fh is not None:
            self._fh.close()
        elif self._writer is not None:
            self._writer.close()

    def _schema(self) -> Any:
        pa = self._pa
        text = pa.dictionary(pa.int32(), pa.string()) if self.kind == "parquet" else pa.string()
        utc = pa.timestamp("us", tz="UTC") if self.kind == "parquet" else pa.string()
        return pa.schema([
            ("time_s", pa.float64()), ("utc", utc), ("spacecraft", text), ("soc", pa.float64()),
            ("temperature_k", pa.float64()), ("stored_bytes", pa.float64()), ("activity", text),
            ("in_eclipse", pa.bool_()), ("in_contact", pa.bool_()), ("isl_contact", pa.bool_()),
        ])  # fmt: skip

    def write(self, times_s: NDArray[np.float64], first_sat: int, series: dict[str, np.ndarray]) -> None:
        """One chunk: arrays of shape (records, m) for satellites first_sat .. first_sat + m - 1."""
        n_t, m = series["soc"].shape
        if m == 0 or n_t == 0:
            return
        step = max(1, ROWS_PER_BLOCK // m)
        for a in range(0, n_t, step):
            b = min(n_t, a + step)
            self._block(times_s[a:b], first_sat, {k: series[k][a:b] for k in SERIES_KEYS})
        self.rows += n_t * m

    def _block(self, times_s: NDArray[np.float64], first_sat: int, s: dict[str, np.ndarray]) -> None:
        n_t, m = s["soc"].shape
        t_idx = np.repeat(np.arange(n_t), m)
        sat_idx = np.tile(np.arange(first_sat, first_sat + m, dtype=np.int32), n_t)
        act_idx = s["activity"].ravel().astype(np.int32)
        iso = [(self.epoch + timedelta(seconds=float(t))).isoformat() for t in times_s]
        numeric = {k: s[k].ravel() for k in ("soc", "temperature_k", "stored_bytes")}
        flags = {k: s[k].ravel() for k in ("in_eclipse", "in_contact", "isl_contact")}
        pa = self._pa
        if pa is None:
            names = np.array(self.names, dtype=object)
            acts = np.array(self.activity_names, dtype=object)
            cols = {"time_s": times_s[t_idx], "utc": np.array(iso, dtype=object)[t_idx], "spacecraft": names[sat_idx],
                    "activity": acts[act_idx], **numeric, **flags}  # fmt: skip
            self._writer.writerows(zip(*(cols[c].tolist() for c in COLUMNS), strict=True))
            return
        if self.kind == "parquet":
            epoch_us = np.datetime64(self.epoch.replace(tzinfo=None), "us")
            utc = pa.array(epoch_us + (times_s * 1e6).round().astype("timedelta64[us]"), pa.timestamp("us", tz="UTC"))
            utc_col = utc.take(pa.array(t_idx))
            sc = pa.DictionaryArray.from_arrays(pa.array(sat_idx), pa.array(self.names))
            act = pa.DictionaryArray.from_arrays(pa.array(act_idx), pa.array(self.activity_names))
        else:
            utc_col = pa.array(iso).take(pa.array(t_idx))
            sc = pa.array(self.names).take(pa.array(sat_idx))
            act = pa.array(self.activity_names).take(pa.array(act_idx))
        table = pa.table(
            {"time_s": times_s[t_idx], "utc": utc_col, "spacecraft": sc, "soc": numeric["soc"],
             "temperature_k": numeric["temperature_k"], "stored_bytes": numeric["stored_bytes"], "activity": act,
             **flags},
            schema=self._schema(),
        )  # fmt: skip
        self._writer.write_table(table)


def write_timeseries(result: SimResult, path: str | Path) -> Path:
    """Write a whole result's time series (CSV `.csv` or Parquet `.parquet`/`.pq`); anything else is refused."""
    with SeriesWriter(path, result.names, result.activity_names, result.epoch) as writer:
        series = {k: getattr(result, k) for k in SERIES_KEYS}
        writer.write(result.times_s, 0, series)
    return writer.path


_KIND_NAMES = {EventKind.ECLIPSE: "eclipse", EventKind.CONTACT: "contact", EventKind.ISL: "isl",
               EventKind.RESTART: "restart", EventKind.FAILURE: "failure", EventKind.ACTIVITY: "activity"}  # fmt: skip


def event_columns(
    result: SimResult, stations: Sequence[str] = (), isl_pairs: Sequence[tuple[int, int]] = ()
) -> dict[str, np.ndarray]:
    """The event log as columns in time order: time_s, sat (index), kind, edge, detail (strings).

    Built from integer codes (`event_codes`), so a fleet's millions of edges cost a few bytes each until written."""
    codes, vocab = event_codes(result, stations, isl_pairs)
    words = np.array(vocab, dtype=object)
    kinds = np.array([_KIND_NAMES.get(k, "") for k in range(8)], dtype=object)
    edge = np.where(codes["start"], "start", "end").astype(object)
    return {"time_s": codes["time_s"], "sat": codes["sat"], "kind": kinds[codes["kind"]], "edge": edge,
            "detail": words[codes["detail"]]}  # fmt: skip


def event_codes(
    result: SimResult, stations: Sequence[str] = (), isl_pairs: Sequence[tuple[int, int]] = ()
) -> tuple[dict[str, np.ndarray], list[str]]:
    """(columns time_s, sat, kind (EventKind), start (bool), detail (index into the vocabulary)), vocabulary."""
    kind = result.event_kind
    keep = np.isin(kind, list(_KIND_NAMES))
    sat, t, kind = result.event_sat[keep], result.event_time_s[keep], kind[keep]
    arg, value = result.event_arg[keep], result.event_value[keep]
    n_st, n_sat, n_act = len(stations), len(result.names), len(result.activity_names)
    relays = int(max(0, -int(arg[kind == EventKind.ISL].min(initial=0))))
    vocab = ["", *stations, *result.names, *result.activity_names, *(f"relay-{r}" for r in range(relays))]
    sat_base, act_base, relay_base = 1 + n_st, 1 + n_st + n_sat, 1 + n_st + n_sat + n_act
    point = (kind == EventKind.RESTART) | (kind == EventKind.FAILURE) | (kind == EventKind.ACTIVITY)
    start = np.where(kind == EventKind.ECLIPSE, value > 0.5, value > 0) | point
    detail = np.zeros(t.size, dtype=np.int32)
    is_contact = (kind == EventKind.CONTACT) & (arg >= 0) & (arg < n_st)
    detail[is_contact] = 1 + arg[is_contact]
    is_isl = kind == EventKind.ISL
    pairs = np.array(isl_pairs, dtype=np.int64).reshape(-1, 2)
    pair_isl = is_isl & (arg >= 0) & (arg < len(pairs))
    if pair_isl.any():
        pa, pb = pairs[arg[pair_isl], 0], pairs[arg[pair_isl], 1]
        detail[pair_isl] = sat_base + np.where(pa == sat[pair_isl], pb, pa)
    relay_isl = is_isl & (arg < 0)
    detail[relay_isl] = relay_base + (-1 - arg[relay_isl])
    is_act = kind == EventKind.ACTIVITY
    detail[is_act] = act_base + arg[is_act]
    # an activity change is two rows at the same time: the old activity's end, then the new one's start
    old = np.flatnonzero(is_act)
    order = np.argsort(np.concatenate([np.arange(t.size) * 2 + 1, old * 2]), kind="stable")
    cols = {
        "time_s": np.concatenate([t, t[old]])[order],
        "sat": np.concatenate([sat, sat[old]])[order],
        "kind": np.concatenate([kind, kind[old]]).astype(np.int8)[order],
        "start": np.concatenate([start, np.zeros(old.size, dtype=np.bool_)])[order],
        "detail": np.concatenate([detail, act_base + value[old].astype(np.int32)])[order],
    }
    return cols, vocab


def write_events(
    result: SimResult, path: str | Path, stations: Sequence[str] = (), isl_pairs: Sequence[tuple[int, int]] = ()
) -> Path:
    """Write the event log (EVENT_COLUMNS) as CSV or Parquet, in blocks."""
    p, fmt = _format(path)
    codes, vocab = event_codes(result, stations, isl_pairs)
    names = np.array(result.names, dtype=object)
    words = np.array(vocab, dtype=object)
    kinds = np.array([_KIND_NAMES.get(k, "") for k in range(8)], dtype=object)
    pa = _pyarrow()
    if fmt == "parquet" and pa is None:
        raise InvalidArgument("Parquet output needs pyarrow (pip install 'skymesh[sim]'); or use .csv", field="events")
    block = 200_000
    total = codes["time_s"].size

    def strings(a: int) -> tuple[np.ndarray, list[str], list[str], list[str], list[str]]:
        sl = slice(a, a + block)
        t = codes["time_s"][sl]
        edge = np.where(codes["start"][sl], "start", "end")
        return (
            t,
            names[codes["sat"][sl]].tolist(),
            kinds[codes["kind"][sl]].tolist(),
            edge.tolist(),
            words[codes["detail"][sl]].tolist(),
        )

    if fmt == "csv":
        with p.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(EVENT_COLUMNS)
            for a in range(0, total, block):
                t, sc, kd, ed, de = strings(a)
                utc = [(result.epoch + timedelta(seconds=x)).isoformat() for x in t.tolist()]
                writer.writerows(zip(t.tolist(), utc, sc, kd, ed, de, strict=True))
        return p
    import pyarrow.parquet as pq

    schema = pa.schema([("time_s", pa.float64()), ("utc", pa.timestamp("us", tz="UTC")), ("spacecraft", pa.string()),
                        ("kind", pa.string()), ("edge", pa.string()), ("detail", pa.string())])  # fmt: skip
    epoch_us = np.datetime64(result.epoch.replace(tzinfo=None), "us")
    with pq.ParquetWriter(p, schema) as writer:
        for a in range(0, max(1, total), block):
            t, sc, kd, ed, de = strings(a)
            utc = pa.array(epoch_us + (t * 1e6).round().astype("timedelta64[us]"), pa.timestamp("us", tz="UTC"))
            text = [pa.array(x, pa.string()) for x in (sc, kd, ed, de)]
            writer.write_table(pa.table([pa.array(t, pa.float64()), utc, *text], schema=schema))
    return p
