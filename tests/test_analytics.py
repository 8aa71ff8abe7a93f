"""Zones, incidents, presence, calibration checks and late corrections, on small hand-made scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_agent.aggregation import IntervalAggregator, Layout
from edge_agent.analytics import CameraAnalytics
from edge_agent.config import AgentConfig, ConfigError, parse_config
from edge_agent.controller.actuation import parse_presence
from edge_agent.messages import event_payload, validate
from edge_agent.types import CrossingEvent, Direction, Tracks

NAMES = ["person", "car", "motorcycle", "bus", "truck"]
T0 = 1_714_982_400.0


def base(tmp: Path) -> dict[str, Any]:
    (tmp / "m.onnx").write_bytes(b"")
    (tmp / "v.mp4").write_bytes(b"")
    return {"model": {"path": "m.onnx"}, "statistics": {"interval_s": 10},
            "cameras": [{"id": "cam", "source": "v.mp4",
                         "lines": [{"id": "stop", "p1": [100, 100], "p2": [300, 100]}],
                         "zones": [{"id": "lane1", "polygon": [[100, 100], [300, 100], [300, 400], [100, 400]],
                                    "lane": "l1", "stop_line": "stop", "travel": [[200, 400], [200, 100]]}]}]}


def load(tmp: Path, doc: dict[str, Any]) -> AgentConfig:
    return parse_config(yaml.safe_dump(doc), tmp / "site.yaml")


def refused(tmp: Path, doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp, doc)
    return str(exc.value)


def tracks(rows: dict[int, tuple[float, float, int]]) -> Tracks:
    """Track id -> (anchor x, anchor y, class index): 20x20 boxes standing on their anchor, all matched."""
    if not rows:
        return Tracks.empty()
    ids = list(rows)
    xyxy = [[x - 10, y - 20, x + 10, y] for x, y, _ in rows.values()]
    n = len(ids)
    return Tracks(np.array(ids, np.int64), np.array(xyxy, np.float32), np.full(n, 0.8, np.float32),
                  np.array([c for _, _, c in rows.values()], np.int64), np.arange(n, dtype=np.int64),
                  np.zeros((n, 2), np.float32))


def calibration(points: list[tuple[list[float], list[float]]]) -> dict[str, Any]:
    return {"points": [{"image": img, "ground": g} for img, g in points]}


SQUARE = [([100, 100], [0, 0]), ([300, 100], [10, 0]), ([300, 300], [10, 10]), ([100, 300], [0, 10])]


# ------------------------------------------------------------------ configuration


def test_calibration_is_checked_at_start(tmp_path: Path) -> None:
    doc = base(tmp_path)
    cam = doc["cameras"][0]
    cam["calibration"] = calibration(SQUARE[:3])
    assert "cameras[0].calibration.points: List should have at least 4 items" in refused(tmp_path, doc)
    cam["calibration"] = calibration([([100, 100], [0, 0]), ([200, 100], [5, 0]), ([300, 100], [10, 0]),
                                      ([100, 300], [0, 10])])
    msg = refused(tmp_path, doc)
    assert "line 1" not in msg and "cameras[0].calibration" in msg and "on one line" in msg
    cam["calibration"] = calibration(SQUARE + [([200, 200], [9, 1])])  # a fifth point 5.7 m off the plane
    assert "point 4 is" in refused(tmp_path, doc) and "max_error_m" in refused(tmp_path, doc)
    cam["calibration"] = calibration(SQUARE + [([200, 200], [5, 5])])
    plane = load(tmp_path, doc).cameras[0].calibration.plane()  # type: ignore[union-attr]
    assert plane.rms_error_m < 1e-6
    assert np.allclose(plane.to_ground([[200, 200], [300, 300]]), [[5, 5], [10, 10]])


def test_references_and_zone_shapes_are_checked(tmp_path: Path) -> None:
    doc = base(tmp_path)
    doc["cameras"][0]["zones"][0]["stop_line"] = "nope"
    assert "cameras[0].zones[0].stop_line: 'nope' is not a line of this camera; lines: stop" in refused(tmp_path, doc)
    doc = base(tmp_path)
    doc["cameras"][0]["movements"] = [{"id": "m", "from": "stop", "to": "exit"}]
    assert "cameras[0].movements[0].to: 'exit' is not a line or zone" in refused(tmp_path, doc)
    doc = base(tmp_path)
    doc["cameras"][0]["zones"][0]["spillback_m"] = 30
    assert "zones[0].spillback_m: a spill-back mark in metres needs a calibration" in refused(tmp_path, doc)
    doc = base(tmp_path)
    doc["cameras"][0]["zones"][0]["polygon"] = [[100, 100], [300, 100], [150, 400], [300, 300]]
    assert "polygon edges cross each other" in refused(tmp_path, doc)
    doc = base(tmp_path)
    doc["statistics"]["interval_s"] = [60, 7]
    assert "statistics.interval_s: expected a divisor of 86400" in refused(tmp_path, doc)
    doc["statistics"]["interval_s"] = [60, 900]
    assert load(tmp_path, doc).statistics.intervals == [60, 900]


# ------------------------------------------------------------------ incidents and presence


def run(cfg: AgentConfig, frames: list[dict[int, tuple[float, float, int]]], fps: float = 10.0):  # type: ignore[no-untyped-def]
    an = CameraAnalytics(cfg.cameras[0], cfg, NAMES)
    out = []
    for k, rows in enumerate(frames):
        out.append(an.update(tracks(rows), T0 + k / fps))
    return an, out


def test_wrong_way_vehicle_raises_one_incident_with_start_and_end(tmp_path: Path) -> None:
    cfg = load(tmp_path, base(tmp_path))
    # car 1 drives up the lane (with the travel arrow), car 2 down it (against), 30 px/s, then leaves the zone
    frames = [{1: (150, 380 - 3 * k, 1), 2: (250, 120 + 3 * k, 1)} for k in range(60)]
    frames += [{1: (150, 200, 1)} for _ in range(10)]  # car 2 gone
    _, out = run(cfg, frames)
    incidents = [i for fe in out for i in fe.incidents]
    assert [(i.kind, i.track_id, i.end is None) for i in incidents] == [("wrong_way", 2, True), ("wrong_way", 2, False)]
    start, end = incidents
    assert start.incident_id == end.incident_id and start.lane == "l1" and start.where == "lane1"
    assert start.start == pytest.approx(T0 + 0.3, abs=0.11)  # moving against it from its first fitted velocity
    assert end.end == pytest.approx(T0 + 6.0, abs=0.11)
    assert start.confidence == pytest.approx(0.8) and start.detail["unit"] == "px/s"
    for inc in incidents:
        validate(event_payload(inc, "node"), "events.v1")


def test_stopped_vehicle_and_queue_spillback(tmp_path: Path) -> None:
    doc = base(tmp_path)
    zone = doc["cameras"][0]["zones"][0]
    zone["no_stopping_s"] = 3
    zone["spillback_veh"] = 3
    cfg = load(tmp_path, doc)
    # three cars stop in the lane one after another; after 6 s they drive off upwards
    stopped = {1: (200, 130, 1), 2: (200, 170, 1), 3: (200, 210, 1)}
    frames = [dict(list(stopped.items())[: 1 + k // 10]) for k in range(30)]
    frames += [stopped] * 30
    frames += [{t: (x, y - 20 * (k + 1), c) for t, (x, y, c) in stopped.items()} for k in range(12)]
    an, out = run(cfg, frames)
    kinds = [(i.kind, i.track_id, i.end is None, round(i.start - T0, 1)) for fe in out for i in fe.incidents]
    # a car's speed is known 0.4 s after it appears (the first fit needs 0.3 s of positions): the third car
    # arrives at 2.0 s and the queue reaches 3 at 2.4 s; each car is stopped from its first known speed
    assert ("spillback", None, True, 2.4) in kinds
    assert [k for k in kinds if k[0] == "stopped" and k[2]] == [
        ("stopped", 1, True, 0.4), ("stopped", 2, True, 1.4), ("stopped", 3, True, 2.4)]
    first_report = next(k for k, fe in enumerate(out) if any(i.kind == "stopped" for i in fe.incidents))
    assert first_report == 34  # published once car 1 has stood still for no_stopping_s (0.4 + 3 s)
    ends = [i for fe in out for i in fe.incidents if i.end is not None]
    assert sorted((i.kind, i.track_id, round(i.end - T0, 1)) for i in ends) == [  # type: ignore[operator]
        ("spillback", None, 6.1), ("stopped", 1, 6.1), ("stopped", 2, 6.1), ("stopped", 3, 6.1)]
    zs = out[45].zones[0]
    assert (zs.vehicles, zs.queued, zs.near, zs.queue_m) == (3, 3, 3, None)  # no calibration: no metres
    doc_p = an.presence(T0 + 100)
    assert doc_p is not None
    validate(doc_p, "presence.v1")
    _, lanes = parse_presence(doc_p, 0.0)  # what the controller's signal actuation reads
    assert lanes[0][0] == "l1"


def test_queue_in_metres_and_presence_near_the_stop_line(tmp_path: Path) -> None:
    doc = base(tmp_path)
    doc["cameras"][0]["calibration"] = calibration(SQUARE)  # 20 px per metre, y = 100 px is 0 m
    doc["statistics"]["near_stop_m"] = 5
    cfg = load(tmp_path, doc)
    stopped = {1: (200, 130, 1), 2: (200, 250, 1)}  # 1.5 m and 7.5 m behind the stop line
    _, out = run(cfg, [stopped] * 20)
    zs = out[-1].zones[0]
    assert zs.queued == 2 and zs.queue_m == pytest.approx(7.5, abs=0.01) and zs.near == 1


def test_a_crossing_takes_the_class_its_track_has_when_its_speed_is_known(tmp_path: Path) -> None:
    """With a calibration a crossing waits half a speed window; its class is the track's majority by then
    (a track born on a truck's half seen as a car crosses as a car, then its truck detections outvote it)."""
    doc = base(tmp_path)
    doc["cameras"][0]["calibration"] = calibration(SQUARE)
    cfg = load(tmp_path, doc)
    # up the image through the stop line (y = 100) at 3 px per frame; class car until 2 frames after the line
    frames = [{1: (200, 130 - 3 * k, 1 if k < 12 else 4)} for k in range(40)]
    _, out = run(cfg, frames)
    (ev,) = [e for fe in out for e in fe.crossings]
    assert (ev.line_id, ev.class_name, ev.speed_kmh is not None) == ("stop", "truck", True)
    assert ev.ts == pytest.approx(T0 + 1.0, abs=0.01)   # the crossing time itself is unchanged


def test_a_track_that_ends_just_after_the_line_keeps_its_speed(tmp_path: Path) -> None:
    """The tracker drops the track 0.5 s after the line (it drove behind a bus): the crossing is released
    then, with the speed of the half window it has (20 px per metre, 3 px per frame at 10 fps = 5.4 km/h)."""
    doc = base(tmp_path)
    doc["cameras"][0]["calibration"] = calibration(SQUARE)
    cfg = load(tmp_path, doc)
    frames = [{1: (200, 130 - 3 * k, 1)} for k in range(16)] + [{}] * 10
    _, out = run(cfg, frames)
    (ev,) = [e for fe in out for e in fe.crossings]
    assert ev.speed_kmh == pytest.approx(5.4, abs=0.01)


# ------------------------------------------------------------------ intervals


def test_several_interval_lengths_and_late_corrections() -> None:
    layout = Layout.of_lines(["a"])
    short, long_ = IntervalAggregator("cam", layout, 10), IntervalAggregator("cam", layout, 60)
    ev = CrossingEvent("cam", "a", 1, "car", Direction.IN, T0 + 5)
    recs = []
    for agg in (short, long_):
        for k in range(130):
            recs += agg.add_frame(T0 + k / 10, 1.0, 0, [ev] if k == 50 else [])
    recs += long_.flush(T0 + 13.0)
    assert [(r.seconds, r.partial, r.lines[0].total()) for r in recs] == [(10.0, False, 1), (60.0, True, 1)]
    first = recs[0]
    assert first.lines[0].total() == 1 and first.revision == 0
    # a crossing timed in the first interval arrives after it was published: a revised record, not a change
    late = CrossingEvent("cam", "a", 2, "bus", Direction.OUT, T0 + 9.0)
    (rev,) = short.add_frame(T0 + 13.0, 1.0, 0, [late])
    assert rev.start == first.start and rev.revision == 1
    assert rev.lines[0].counts[Direction.OUT] == {"bus": 1} and first.lines[0].counts[Direction.OUT] == {}
    # within the grace period the same crossing lands in its interval before it is published
    agg = IntervalAggregator("cam", layout, 10, grace_s=3.0)
    assert agg.add_frame(T0 + 9.9, 1.0) == []
    assert agg.add_frame(T0 + 10.5, 1.0, 0, [CrossingEvent("cam", "a", 2, "bus", Direction.OUT, T0 + 9.95)]) == []
    (rec,) = agg.add_frame(T0 + 13.0, 1.0)
    assert rec.revision == 0 and rec.lines[0].counts[Direction.OUT] == {"bus": 1}


def test_a_track_that_enters_again_after_its_movement_makes_a_new_trip() -> None:
    """One movement per trip: an id that crosses an origin line after its movement was completed (a vehicle
    revealed behind one that drove off, a track stitched onto a vehicle that entered where one left) counts
    again; touches before the completion do not."""
    from edge_agent.analytics.movements import MovementCounter
    from edge_agent.config import MovementConfig

    mv = [MovementConfig(id=f"{a}-{b}", **{"from": a}, to=b) for a, b in (("a", "b"), ("b", "a"), ("a", "c"))]
    counter = MovementCounter(mv, "cam", NAMES)
    car = tracks({7: (200, 200, 1)})

    def cross(line: str, t: float) -> list[str]:
        return [m.movement_id for m in counter.update(car, T0 + t, [CrossingEvent("cam", line, 7, "car",
                                                                                  Direction.IN, T0 + t)], {})]

    assert cross("a", 0.0) == [] and cross("b", 1.0) == ["a-b"]
    assert cross("c", 2.0) == []  # the trip is over: c is no origin, nothing starts
    assert cross("b", 3.0) == [] and cross("a", 4.0) == ["b-a"]


def test_a_new_track_on_a_vehicle_takes_the_origin_of_the_old_one_that_died_on_it() -> None:
    """Track 7 enters over a; the tracker starts track 8 on the same car while 7 still holds a box on it (their
    boxes overlap, both matched), and 7 dies: 8 leaves over b and completes a-b with 7's origin. 7's origin is
    taken once: track 9, whose box overlapped 7's too, completes nothing, and neither does track 10, which
    never shared a vehicle with another track."""
    from edge_agent.analytics.movements import MovementCounter
    from edge_agent.config import MovementConfig

    counter = MovementCounter([MovementConfig(id="a-b", **{"from": "a"}, to="b")], "cam", NAMES)

    def cross(rows: dict[int, tuple[float, float, int]], t: float, *events: tuple[int, str]) -> list[tuple[str, int]]:
        evs = [CrossingEvent("cam", line, tid, "car", Direction.IN, T0 + t) for tid, line in events]
        return [(m.movement_id, m.track_id) for m in counter.update(tracks(rows), T0 + t, evs, {})]

    assert cross({7: (200, 200, 1)}, 0.0, (7, "a")) == []
    rows = {7: (200, 200, 1), 8: (195, 198, 1), 9: (205, 202, 1), 10: (400, 300, 1)}
    assert cross(rows, 0.1) == []  # 8 and 9 on 7's car (IoU 0.51 each)
    assert cross({8: (190, 190, 1), 9: (240, 200, 1), 10: (400, 290, 1)}, 0.2) == []  # 7 is gone
    assert cross({8: (180, 180, 1), 9: (240, 190, 1), 10: (400, 280, 1)}, 0.5,
                 (8, "b"), (9, "b"), (10, "b")) == [("a-b", 8)]


def test_a_movement_survives_a_frame_without_the_track() -> None:
    from edge_agent.analytics.movements import MovementCounter
    from edge_agent.config import MovementConfig

    counter = MovementCounter([MovementConfig(id="a-b", **{"from": "a"}, to="b")], "cam", NAMES)
    car = tracks({7: (200, 200, 1)})
    assert counter.update(car, T0, [CrossingEvent("cam", "a", 7, "car", Direction.IN, T0)], {}) == []
    assert counter.update(Tracks.empty(), T0 + 0.1, [], {}) == []  # merged with another box for a frame
    (mv,) = counter.update(car, T0 + 0.2, [CrossingEvent("cam", "b", 7, "car", Direction.OUT, T0 + 0.15)], {})
    assert (mv.movement_id, mv.track_id, mv.class_name, mv.ts) == ("a-b", 7, "car", T0 + 0.15)
    # ... but a track gone for longer than forget_s is forgotten
    counter.update(tracks({8: (0, 0, 1)}), T0 + 1, [CrossingEvent("cam", "a", 8, "car", Direction.IN, T0 + 1)], {})
    counter.update(Tracks.empty(), T0 + 4, [], {})
    assert counter.update(tracks({8: (0, 0, 1)}), T0 + 4.1,
                          [CrossingEvent("cam", "b", 8, "car", Direction.OUT, T0 + 4.1)], {}) == []


def test_a_box_on_a_part_of_a_vehicle_is_not_counted(tmp_path: Path) -> None:
    """A truck's cab boxed as a car (track 2) lives inside the truck's box (track 1) and crosses the line with
    it: only the truck is counted. A car seen on its own first (track 3) drives into the box of a bus standing
    in front of it (track 4) and crosses the line there: it is counted."""
    def run(share: float) -> list[tuple[int, str]]:
        doc = base(tmp_path)
        doc["statistics"]["part_share"] = share
        cfg = load(tmp_path, doc)
        an = CameraAnalytics(cfg.cameras[0], cfg, NAMES)
        out = []
        for k in range(20):
            y = 130.0 - 4 * k  # all drive up over the line at y = 100
            y3 = 190.0 - 6 * k  # in the bus's box from frame 8, over the line at frame 17
            rows = {1: ([140, y - 40, 200, y], 4), 2: ([142, y - 38, 170, y - 8], 1),
                    3: ([240, y3 - 10, 260, y3 + 10], 1), 4: ([200, 70, 300, 150], 3)}
            n = len(rows)
            tr = Tracks(np.array(list(rows), np.int64), np.array([b for b, _ in rows.values()], np.float32),
                        np.full(n, 0.8, np.float32), np.array([c for _, c in rows.values()], np.int64),
                        np.arange(n, dtype=np.int64), np.zeros((n, 2), np.float32))
            out += [(e.track_id, e.class_name) for e in an.update(tr, T0 + k / 10).crossings]
        return sorted(out)

    assert run(0.8) == [(1, "truck"), (3, "car")]
    assert run(0.0) == [(1, "truck"), (2, "car"), (3, "car")]


def test_a_box_that_a_whole_vehicle_appears_around_is_a_part(tmp_path: Path) -> None:
    """An articulated truck drives in past the frame's edge: its first track (2) starts on the cab, the only part
    in view. When the whole truck is in view a new track (1) starts on it, and track 2 stays on the cab, inside
    it, over the line: only the truck is counted, though track 2 was a vehicle of its own for most of its
    frames. A car (3) driving up with them, into the box of a bus (4) first seen before the car was in it, is
    counted."""
    cfg = load(tmp_path, base(tmp_path))
    an = CameraAnalytics(cfg.cameras[0], cfg, NAMES)
    out = []
    for k in range(30):
        y = 150.0 - 2.5 * k  # all drive up over the line at y = 100, at frame 20
        rows = {2: ([142, y - 38, 170, y - 2], 4), 3: ([240, y - 10, 260, y], 1)}
        if k >= 16:
            rows[1] = ([140, y - 40, 200, y], 4)
        if k >= 4:
            rows[4] = ([230, 60, 300, 130], 3)  # the car is in its box from frame 8
        n = len(rows)
        tr = Tracks(np.array(list(rows), np.int64), np.array([b for b, _ in rows.values()], np.float32),
                    np.full(n, 0.8, np.float32), np.array([c for _, c in rows.values()], np.int64),
                    np.arange(n, dtype=np.int64), np.zeros((n, 2), np.float32))
        out += [(e.track_id, e.class_name) for e in an.update(tr, T0 + k / 10).crossings]
    assert sorted(out) == [(1, "truck"), (3, "car")]
