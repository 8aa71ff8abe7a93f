"""Interval statistics: clock alignment, partial intervals, flow, schema."""

from __future__ import annotations

from datetime import datetime, timezone

import jsonschema
import pytest

from edge_agent.aggregation import IntervalAggregator
from edge_agent.messages import stats_message, stats_payload, validate_stats
from edge_agent.types import CrossingEvent, Direction

T0 = datetime(2024, 5, 6, 8, 0, 0, tzinfo=timezone.utc).timestamp()


def ev(line: str, direction: Direction, cls: str, ts: float, tid: int = 1) -> CrossingEvent:
    return CrossingEvent("cam", line, tid, cls, direction, ts)


def test_intervals_align_to_the_clock_and_the_first_is_partial() -> None:
    agg = IntervalAggregator("cam", ["a"], 60)
    records = []
    start = T0 + 17.0  # the source starts 17 s into a minute
    for i in range(0, 1300):  # 10 fps for 130 s
        ts = start + i / 10
        records += agg.add_frame(ts, 5.0, events=[ev("a", Direction.IN, "car", ts)] if i % 100 == 0 else [])
    records += agg.flush(start + 1300 / 10)
    assert [r.start.isoformat() for r in records] == [
        "2024-05-06T08:00:00+00:00", "2024-05-06T08:01:00+00:00", "2024-05-06T08:02:00+00:00"]
    assert [r.partial for r in records] == [True, False, True]
    assert [r.observed_s for r in records] == [43.0, 60.0, 27.0]
    assert [r.frames_processed for r in records] == [430, 600, 270]
    assert sum(r.lines[0].total(Direction.IN) for r in records) == 13
    assert records[1].inference_ms_mean == 5.0


def test_a_gap_in_frames_still_emits_empty_intervals() -> None:
    agg = IntervalAggregator("cam", ["a"], 10)
    agg.add_frame(T0 + 1, 1.0)
    out = agg.add_frame(T0 + 35, 1.0)
    assert [r.frames_processed for r in out] == [1, 0, 0]
    assert all(not r.partial for r in out[1:])


def test_flush_on_a_boundary_does_not_emit_an_empty_partial() -> None:
    agg = IntervalAggregator("cam", [], 10)
    out = []
    for i in range(100):
        out += agg.add_frame(T0 + i / 10, 1.0)
    out += agg.flush(T0 + 10.0)
    assert len(out) == 1 and not out[0].partial and out[0].frames_processed == 100


def test_dropped_frames_are_counted() -> None:
    agg = IntervalAggregator("cam", [], 10)
    agg.add_frame(T0, 1.0, dropped=3)
    (rec,) = agg.flush(T0 + 1)
    assert rec.frames_dropped == 3 and rec.frames_processed == 1


def test_interval_must_divide_a_day() -> None:
    with pytest.raises(ValueError, match="divisor of 86400, got 7"):
        IntervalAggregator("cam", [], 7)


def test_payload_flow_and_schema() -> None:
    agg = IntervalAggregator("north", ["stop", "exit"], 60)
    events = [ev("stop", Direction.IN, "car", T0 + 1, 1), ev("stop", Direction.IN, "car", T0 + 2, 2),
              ev("stop", Direction.IN, "bus", T0 + 3, 3), ev("stop", Direction.IN, "person", T0 + 4, 4),
              ev("exit", Direction.OUT, "truck", T0 + 5, 5)]
    agg.add_frame(T0, 100.0, events=events)
    (rec,) = agg.add_frame(T0 + 60, 100.0)
    doc = stats_payload(rec, "node-1", {"car", "bus", "truck"})
    validate_stats(doc)
    stop, exit_ = doc["lines"]
    assert stop["in"] == {"total": 4, "by_class": {"bus": 1, "car": 2, "person": 1}, "vehicles": 3,
                          "flow_veh_h": 180.0}
    assert stop["out"] == {"total": 0, "by_class": {}, "vehicles": 0, "flow_veh_h": 0.0}
    assert exit_["out"]["flow_veh_h"] == 60.0
    assert doc["interval"] == {"start": "2024-05-06T08:00:00Z", "end": "2024-05-06T08:01:00Z", "length_s": 60.0,
                               "observed_s": 60.0, "partial": False}
    msg = stats_message(rec, "city/east", "node-1", {"car"})
    assert msg.topic == "city/east/north/stats" and msg.qos == 1 and not msg.retain


def test_schema_rejects_a_broken_message() -> None:
    agg = IntervalAggregator("cam", ["a"], 60)
    agg.add_frame(T0, 1.0)
    (rec,) = agg.flush(T0 + 1)
    doc = stats_payload(rec, "n", set())
    doc["lines"][0]["in"]["total"] = -1
    with pytest.raises(jsonschema.ValidationError):
        validate_stats(doc)
    del doc["lines"][0]["in"]
    with pytest.raises(jsonschema.ValidationError):
        validate_stats(doc)
