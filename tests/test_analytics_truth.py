"""The analytics against exact ground truth: simulated trajectories on a known homography, no video.

``analytics_truth.simulate`` drives vehicles through a signalised approach and
projects them into a camera; the truth (crossing times and speeds, movements,
zone contents) comes from the simulation itself. The pipeline's analytics and
aggregators see only the per-frame Tracks and the YAML configuration.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from analytics_truth import COUNT_Y, LANE_X, T0, Truth, ground_to_image, simulate

from edge_agent.aggregation import IntervalAggregator
from edge_agent.analytics import CameraAnalytics, analytics_layout
from edge_agent.analytics.zones import EXIT_S
from edge_agent.config import parse_config
from edge_agent.messages import stats_payload, validate_stats
from edge_agent.types import Direction, IntervalRecord

NAMES = ["person", "car", "motorcycle", "bus", "truck"]
VEHICLES = ["car", "motorcycle", "bus", "truck"]
INTERVALS = [60, 300]


def config_yaml(truth: Truth, tmp: Path) -> str:
    h = truth.homography
    ground = [(-8.0, -70.0), (12.0, -70.0), (12.0, -20.0), (-8.0, -20.0), (2.0, -45.0), (-5.0, 10.0)]
    points = [{"image": img, "ground": list(g)} for img, g in zip(ground_to_image(h, ground), ground)]
    lines = []
    for lane, x in LANE_X.items():
        p1, p2 = truth.lines[f"count_{lane}"]
        lines.append({"id": f"count_{lane}", "p1": p1, "p2": p2, "in_side": "left", "lane": lane,
                      "approach": "south"})
        s1, s2 = ground_to_image(h, [(x - 1.7, 0.0), (x + 1.7, 0.0)])
        lines.append({"id": f"stop_{lane}", "p1": s1, "p2": s2, "in_side": "left", "approach": "south"})
    for exit_id, (p1, p2) in truth.exits.items():
        lines.append({"id": exit_id, "p1": p1, "p2": p2})
    zones = [{"id": f"q_{lane}", "polygon": truth.zone_polygons[f"q_{lane}"], "lane": lane, "approach": "south",
              "stop_line": f"stop_{lane}"} for lane in LANE_X]
    movements = [{"id": "n1_straight", "from": "count_n1", "to": "exit_north"},
                 {"id": "n1_left", "from": "count_n1", "to": "exit_west"},
                 {"id": "n2_straight", "from": "count_n2", "to": "exit_north"},
                 {"id": "n2_right", "from": "count_n2", "to": "exit_east"}]
    (tmp / "m.onnx").write_bytes(b"")
    (tmp / "v.mp4").write_bytes(b"")
    doc = {"model": {"path": "m.onnx"},
           "statistics": {"interval_s": INTERVALS, "vehicle_classes": VEHICLES, "speed_limit_kmh": 50},
           "cameras": [{"id": "approach", "source": "v.mp4", "calibration": {"points": points},
                        "lines": lines, "zones": zones, "movements": movements}]}
    return yaml.safe_dump(doc, sort_keys=False)


def run_analytics(truth: Truth, tmp: Path) -> tuple[list[IntervalRecord], list]:
    """The camera's analytics and aggregators over the simulated tracks: interval records and crossings
    (also used by scripts/analytics_accuracy.py)."""
    cfg = parse_config(config_yaml(truth, tmp), tmp / "site.yaml")
    cam = cfg.cameras[0]
    analytics = CameraAnalytics(cam, cfg, NAMES)
    layout = analytics_layout(cam, cfg)
    aggs = [IntervalAggregator(cam.id, layout, n, nominal_fps=10.0, grace_s=cfg.statistics.grace_s)
            for n in cfg.statistics.intervals]
    records: list[IntervalRecord] = []
    crossings = []
    for ts, tracks in zip(truth.frame_ts, truth.frames):
        fe = analytics.update(tracks, ts)
        crossings += fe.crossings
        for agg in aggs:
            records += agg.add_frame(ts, 1.0, 0, fe)
    end = truth.frame_ts[-1] + 0.1
    last = analytics.close(end)  # crossings still waiting for the second half of their speed window
    crossings += last.crossings
    for agg in aggs:
        records += agg.add_frame(last.ts, None, 0, last)
        records += agg.flush(end)
    return records, crossings


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, list[IntervalRecord], list]:
    truth = simulate(duration_s=600.0, seed=3)
    records, crossings = run_analytics(truth, tmp_path_factory.mktemp("truth"))
    return truth, records, crossings


def bins(records: list[IntervalRecord], length: int) -> list[IntervalRecord]:
    return [r for r in records if r.seconds == length]


def bin_of(ts: float, length: int) -> float:
    return float(np.floor(ts / length) * length)


def test_counts_by_lane_class_and_direction_are_exact(run) -> None:  # type: ignore[no-untyped-def]
    truth, records, _ = run
    for length in INTERVALS:
        want: dict[tuple[float, str], Counter[str]] = defaultdict(Counter)
        for _, line, cls, t, _ in truth.crossings:
            want[(bin_of(t, length), line)][cls] += 1
        got: dict[tuple[float, str], Counter[str]] = defaultdict(Counter)
        for r in bins(records, length):
            for lc in r.lines:
                if lc.line_id.startswith("count_"):
                    assert lc.total(Direction.OUT) == 0, "nobody drives south on this approach"
                    got[(r.start.timestamp(), lc.line_id)].update(lc.counts[Direction.IN])
        assert {k: +v for k, v in got.items() if v} == {k: v for k, v in want.items()}
    assert len(truth.crossings) > 300  # a real sample: ten minutes of two busy lanes


def test_turning_movement_matrices_are_exact(run) -> None:  # type: ignore[no-untyped-def]
    truth, records, _ = run
    for length in INTERVALS:
        want: dict[tuple[float, str], Counter[str]] = defaultdict(Counter)
        for _, mv, cls, t in truth.movements:
            want[(bin_of(t, length), mv)][cls] += 1
        got: dict[tuple[float, str], Counter[str]] = defaultdict(Counter)
        for r in bins(records, length):
            assert set(r.movements) == {"n1_straight", "n1_left", "n2_straight", "n2_right"}
            for mv, by_class in r.movements.items():
                got[(r.start.timestamp(), mv)].update(by_class)
        assert {k: +v for k, v in got.items() if v} == dict(want)
    assert {m for _, m, _, _ in truth.movements} == {"n1_straight", "n1_left", "n2_straight", "n2_right"}


def test_speeds_at_the_line(run) -> None:  # type: ignore[no-untyped-def]
    truth, records, crossings = run
    true_speed = {(vid, line): v for vid, line, _, _, v in truth.crossings}
    errors = []
    for e in crossings:
        if e.line_id.startswith("count_"):
            assert e.speed_kmh is not None
            v = true_speed[(e.track_id, e.line_id)]
            errors.append(abs(e.speed_kmh - v) / v)
    mae = float(np.mean(errors))
    assert mae <= 0.03, f"mean absolute speed error {mae:.2%}"
    # p85 per interval within 1 km/h of the truth's
    for r in bins(records, 300):
        for lc in r.lines:
            if not lc.line_id.startswith("count_") or lc.speeds is None:
                continue
            t0 = r.start.timestamp()
            true = [v for _, line, _, t, v in truth.crossings if line == lc.line_id and t0 <= t < t0 + 300]
            assert lc.speeds.n == len(true)
            assert abs(lc.speeds.p85 - float(np.percentile(true, 85))) <= 1.0
            assert abs(lc.speeds.space_mean - statistics.harmonic_mean(true)) <= 1.0
            assert lc.speeds.over_limit is not None and abs(lc.speeds.over_limit - sum(v > 50 for v in true)) <= 1
            assert sum(lc.speeds.histogram) == lc.speeds.n


def test_lane_headways_and_flow(run) -> None:  # type: ignore[no-untyped-def]
    truth, records, _ = run
    times: dict[str, list[float]] = defaultdict(list)
    for _, line, _, t, _ in sorted(truth.crossings, key=lambda c: c[3]):
        times[line.removeprefix("count_")].append(t)
    for r in bins(records, 60):
        t0 = r.start.timestamp()
        for lane in r.lanes:
            ts = times[lane.lane_id]
            gaps = [b - a for a, b in zip(ts, ts[1:]) if t0 <= b < t0 + 60]
            assert lane.headway_s[0] == len(gaps)
            if gaps:
                assert lane.headway_s[1] == pytest.approx(np.mean(gaps), rel=0.02)
                assert lane.headway_s[2] == pytest.approx(min(gaps), rel=0.02)
            if not r.partial:
                assert lane.flow_veh_h == pytest.approx(lane.volume * 60, abs=0.1)


def test_zone_occupancy_queue_and_density(run) -> None:  # type: ignore[no-untyped-def]
    truth, records, _ = run
    idx = {ts: i for i, ts in enumerate(truth.frame_ts)}
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for r in bins(records, 60):
        t0 = r.start.timestamp()
        frames = [i for ts, i in idx.items() if t0 <= ts < t0 + 60]
        for z in r.zones:
            veh = np.array(truth.zone_vehicles[z.zone_id])[frames]
            q = np.array(truth.zone_queued[z.zone_id])[frames]
            assert z.occupancy_pct == pytest.approx(100.0 * np.mean(veh > 0), abs=2.0)
            mean_inside = sum(m for _, m, _ in z.occupancy.values())
            assert mean_inside == pytest.approx(veh.mean(), rel=0.02, abs=0.02)
            assert z.density_veh_km == pytest.approx(veh.mean() / 0.040, rel=0.03, abs=0.5)
            assert z.queue_veh is not None and abs(z.queue_veh[1] - q.max()) <= 1
            assert z.queue_m is not None and (z.queue_m[1] > 0) == (z.queue_veh[1] > 0)
            # a track has left after EXIT_S outside, so a departure just before a boundary is booked after it
            dwell = [d for t, d in truth.zone_dwell[z.zone_id] if t0 - EXIT_S <= t < t0 + 60 - EXIT_S]
            # a vehicle whose anchor jitters on the far edge (0.5 m per pixel there) may leave twice
            assert abs(z.dwell_s[0] - len(dwell)) <= 1
            if len(dwell) >= 5:
                assert z.dwell_s[1] == pytest.approx(np.mean(dwell), rel=0.05)
                assert z.dwell_s[2] == pytest.approx(max(dwell), abs=0.5)
            totals[z.zone_id][0] += z.dwell_s[0]
            totals[z.zone_id][1] += z.dwell_s[0] * (z.dwell_s[1] or 0.0)
    for zid, (n, total) in totals.items():
        true = [d for _, d in truth.zone_dwell[zid]]
        assert n == pytest.approx(len(true), rel=0.02)
        assert total / n == pytest.approx(np.mean(true), rel=0.02)


def test_records_are_schema_valid_and_data_quality_adds_up(run) -> None:  # type: ignore[no-untyped-def]
    _, records, _ = run
    assert {r.seconds for r in records} == set(INTERVALS)
    assert len(bins(records, 60)) == 11 and len(bins(records, 300)) == 3  # 600.1 s from 08:00:00
    for r in records:
        doc = stats_payload(r, "node", VEHICLES)
        validate_stats(doc)
        q = r.quality
        assert q is not None and q.frames_expected is not None
        assert abs(q.frames_expected - r.frames_processed) <= 1
        assert q.online_s == pytest.approx(r.observed_s, abs=0.11)
    assert sum(r.frames_processed for r in bins(records, 60)) == sum(r.frames_processed for r in bins(records, 300))


def test_the_counting_line_is_where_the_truth_says() -> None:
    # guard against a harness bug that would make every check above vacuous
    truth = simulate(duration_s=30.0, seed=5)
    assert truth.crossings and all(T0 < t < T0 + 30 for *_, t, _ in truth.crossings)
    assert COUNT_Y < 0
