"""What a run writes: record_step_s honoured exactly, events (edges) from the CLI, time series streamed per chunk,
figures without empty panels, and the learning-pair example's eclipse standby."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from skymesh.cli.main import main
from skymesh.sim.engine import EngineConfig, EventKind
from skymesh.sim.output import SeriesWriter, event_columns
from skymesh.sim.scenario import load_scenario
from tests.sim.test_engine import constellation

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sim"


def test_record_step_finer_than_and_off_the_grid_is_exact() -> None:
    """45 s records on a 60 s grid: every 45 s is recorded, and each record is the state a run ending there has."""
    sim = constellation(2, 2, step_s=60.0, record_step_s=45.0)
    res = sim.run(1800)
    np.testing.assert_allclose(res.times_s, np.arange(0, 1801, 45.0))
    short = constellation(2, 2, step_s=60.0, record_step_s=45.0).run(1305)
    np.testing.assert_allclose(res.soc[29], short.final_state.energy_ws / sim.fleet.capacity_ws, rtol=1e-9)
    np.testing.assert_allclose(res.temperature_k[29], short.final_state.temperature_k, rtol=1e-9)


def test_record_step_below_tolerance_is_refused() -> None:
    from skymesh.core.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as info:
        EngineConfig(record_step_s=0.01)
    assert info.value.field == "record_step_s"


def test_series_sink_streams_chunks_and_matches_the_whole_result(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    sim = constellation(4, 4, step_s=60.0, max_chunk_elements=400)  # several chunks
    whole = sim.run(3600)
    path = tmp_path / "s.parquet"
    chunks: list[int] = []
    with SeriesWriter(path, sim.fleet.names, whole.activity_names, sim.epoch) as writer:

        def sink(first: int, times_s: np.ndarray, series: dict[str, np.ndarray]) -> None:
            chunks.append(first)
            writer.write(times_s, first, series)

        streamed = sim.run(3600, series_sink=sink)
    assert len(chunks) > 2
    assert streamed.soc.shape == (whole.times_s.size, 0)
    table = pq.read_table(path).to_pandas().sort_values(["time_s", "spacecraft"])
    assert len(table) == whole.soc.size
    np.testing.assert_allclose(table["soc"].to_numpy(), whole.soc.ravel())
    assert pq.ParquetFile(path).num_row_groups == len(chunks)
    np.testing.assert_array_equal(streamed.event_time_s, whole.event_time_s)


def test_event_columns_pair_activity_changes_and_name_stations() -> None:
    sim = constellation(2, 2, step_s=60.0)
    res = sim.run(6 * 3600)
    cols = event_columns(res, ["maspalomas"])
    assert set(cols["kind"]) >= {"eclipse", "contact", "activity"}
    act = cols["kind"] == "activity"
    # every activity change is an end row then a start row at the same time
    assert np.sum(act & (cols["edge"] == "end")) == np.sum(act & (cols["edge"] == "start"))
    assert set(cols["detail"][cols["kind"] == "contact"]) == {"maspalomas"}
    n_ecl = int(np.sum(res.event_kind == EventKind.ECLIPSE))
    assert np.sum(cols["kind"] == "eclipse") == n_ecl
    assert np.all(np.diff(cols["time_s"]) >= 0)


def test_cli_writes_events_next_to_the_series(tmp_path: Path) -> None:
    out = tmp_path / "run.csv"
    assert main(["sim", "run", str(EXAMPLES / "learning_pair.yaml"), "--out", str(out), "--duration-s", "21600",
                 "--quiet"]) == 0  # fmt: skip
    with (tmp_path / "run-events.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    kinds = {(r["kind"], r["edge"]) for r in rows}
    assert {("eclipse", "start"), ("eclipse", "end"), ("isl", "start"), ("isl", "end"), ("activity", "start"),
            ("activity", "end")} <= kinds  # fmt: skip
    assert {r["detail"] for r in rows if r["kind"] == "isl"} == {"learner-000", "learner-001"}


def test_learning_pair_stands_by_in_eclipse() -> None:
    """The paper's section III-C: "during eclipse the satellites go into standby" (the example now has eclipses)."""
    sc = load_scenario(EXAMPLES / "learning_pair.yaml")
    res = sc.simulation.run(6 * 3600)
    assert 0.25 < res.in_eclipse.mean() < 0.45
    standby = res.activity_names.index("Standby")
    # records fall on decision epochs; in eclipse the satellites stand by, in sunlight they mostly do not
    assert np.all(res.activity[res.in_eclipse] == standby)
    assert np.mean(res.activity[~res.in_eclipse] == standby) < 0.5


def test_plot_leaves_out_empty_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from skymesh.sim import plot

    sc = load_scenario(EXAMPLES / "learning_pair.yaml")  # no thermal model, no ground stations
    res = sc.simulation.run(7200)
    seen: list[int] = []
    original = plt.subplots

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(int(args[0]))  # type: ignore[call-overload]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    plt.subplots = spy  # type: ignore[assignment]
    try:
        plot.plot_result(res, tmp_path / "lp.png", "Training")
    finally:
        plt.subplots = original
    assert seen == [3]  # state of charge, shares, links: no temperature panel
    assert (tmp_path / "lp.png").stat().st_size > 10_000


def test_series_sink_with_worker_processes_sees_every_chunk_in_order() -> None:
    sim = constellation(4, 4, step_s=60.0, max_chunk_elements=400)
    whole = sim.run(3600)
    got: list[tuple[int, np.ndarray]] = []
    streamed = sim.run(3600, workers=2, series_sink=lambda first, t, s: got.append((first, s["soc"].copy())))
    assert [g[0] for g in got] == sorted(g[0] for g in got) and len(got) > 2
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got], axis=1), whole.soc)
    np.testing.assert_array_equal(streamed.final_state.energy_ws, whole.final_state.energy_ws)
