"""Presence-driven phase control (controller/actuation.py): the rules one by one, and the wiring
presence message -> Ingestor -> Decider -> {prefix}/signals/{id}/phase."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_agent.config import ConfigError
from edge_agent.controller.actuation import PhaseActuator, parse_presence
from edge_agent.controller.app import Controller
from edge_agent.controller.config import IntersectionConfig, parse_controller_config
from edge_agent.controller.signals import SignalPlanner
from edge_agent.messages import load_schema
from test_controller_support import CONFIG, config

LANES = {"north": ["cam-n:n0"], "south": ["cam-s:s0"], "east": ["cam-e:e0"]}


def inter(**actuation: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(CONFIG["intersections"][0]))
    for a in doc["approaches"]:
        a["presence"] = LANES[a["id"]]
    doc["actuation"] = {"tick_s": 1.0, "extension_zone_s": None, "queue_per_extending_veh": None, **actuation}
    return doc


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def presence(act: PhaseActuator, t: float, **lanes: tuple[int, int, int]) -> None:
    """lanes: cam -> (vehicles, queue, near); every configured camera reports (absent = empty)."""
    for cam, lane in (("cam-n", "n0"), ("cam-s", "s0"), ("cam-e", "e0")):
        v, q, n = lanes.get(cam.replace("-", "_"), (0, 0, 0))
        act.on_presence(cam, {"schema": "edge-agent/presence", "schema_version": 1, "camera_id": cam,
                              "lanes": [{"lane_id": lane, "vehicles": v, "queue_veh": q, "near_veh": n}]}, t)


def run(act: PhaseActuator, clock: Clock, seconds: int, **lanes: tuple[int, int, int]) -> list[tuple[float, Any]]:
    out = []
    for _ in range(seconds):
        clock.t += 1
        presence(act, clock.t, **lanes)
        iv = act.tick(clock.t)
        if iv is not None:
            out.append((clock.t, iv))
    return out


def test_min_green_gap_out_and_sequence() -> None:
    clock = Clock()
    act = PhaseActuator(IntersectionConfig.model_validate(inter()), clock)
    # green ns with vehicles near the stop line and a queue on east: extended while cars keep coming
    assert run(act, clock, 20, cam_n=(5, 0, 1), cam_e=(3, 3, 1)) == []
    # the gap: ns ends at once (min green long past), yellow 3 s, all-red 2 s, then east's green
    ch = run(act, clock, 6, cam_n=(0, 0, 0), cam_e=(3, 3, 1))
    assert [(iv.phase, iv.kind, iv.reason) for _, iv in ch] == [
        ("ns", "yellow", "gap out"), ("ns", "all_red", "gap out"), ("e", "green", "gap out")]
    assert ch[1][0] - ch[0][0] == 3 and ch[2][0] - ch[1][0] == 2
    # east: min green 5 s holds even with a gap at once
    ch = run(act, clock, 5, cam_n=(2, 2, 1))
    assert [iv.kind for _, iv in ch] == ["yellow"] and ch[0][0] - act.interval.since == 0
    assert ch[0][0] - (clock.t - 5) >= 4


def test_rest_in_green_and_max_green_from_webster() -> None:
    clock = Clock()
    cfg = IntersectionConfig.model_validate(inter(max_green_factor=1.5))
    act = PhaseActuator(cfg, clock)
    # nobody anywhere else: ns keeps its green (rest), even past max green
    assert run(act, clock, 120, cam_n=(1, 0, 1)) == []
    # a plan gives ns 20 s -> max 30 s; with demand on east and a steady stream on ns it ends at max green
    plan = SignalPlanner(cfg).plan({"north": 600, "south": 300, "east": 300})
    act.set_plan(plan)
    g = plan.phases[0].green_s
    act.interval = type(act.interval)("ns", "green", clock.t, "test")
    ch = run(act, clock, 200, cam_n=(6, 0, 2), cam_e=(4, 4, 0))
    first = ch[0]
    assert first[1].reason == "max green" and first[0] - (clock.t - 200) == pytest.approx(
        min(max(g * 1.5, 5), 80), abs=1.0)


def test_delay_rule_weighs_the_next_phase_queue_clearance() -> None:
    # one vehicle still extending ns; east has 7 vehicles. Ending now makes the extending vehicle wait both
    # intergreens (10 s) + the green east needs to clear its longest lane queue (2 s start-up + 2 s a vehicle at
    # 1800 veh/h); extending costs 1 s to each of east's 7 vehicles (zone 2.5 s: 0.4 vehicle leaves a second).
    def first_change(east: tuple[int, int, int]) -> Any:
        clock = Clock()
        act = PhaseActuator(IntersectionConfig.model_validate(inter(extension_zone_s=2.5)), clock)
        ch = run(act, clock, 30, cam_n=(1, 0, 1), cam_e=east)
        return ch[0][1].reason if ch else None

    assert first_change((7, 1, 0)) == "delay: more waiting than extending"  # 1 x (10 + 5) < 2.5 x 7
    assert first_change((7, 6, 0)) is None  # 1 x (10 + 2 + 12) >= 2.5 x 7: a long queue makes the cut costly


def test_queue_elsewhere_counts_the_served_queue() -> None:
    def first_change(north: tuple[int, int, int], east_queue: int) -> Any:
        clock = Clock()
        cfg = IntersectionConfig.model_validate(inter(queue_per_extending_veh=4.0))
        act = PhaseActuator(cfg, clock)
        act.set_plan(SignalPlanner(cfg).plan({"north": 300, "south": 300, "east": 300}))  # ns green below 30 s
        ch = run(act, clock, 30, cam_n=north, cam_e=(east_queue, east_queue, 0))
        return ch[0][1].reason if ch else None

    # ns serves 1 moving + 2 queued vehicles: east's queue must exceed 4 x 3 to cut it before max green
    assert first_change((3, 2, 1), 12) == "max green"
    assert first_change((3, 2, 1), 13) == "queue elsewhere"
    assert first_change((1, 0, 1), 5) == "queue elsewhere"  # 1 served vehicle: 5 stopped elsewhere suffice


def test_stale_presence_falls_back_to_webster_fixed_greens() -> None:
    clock = Clock()
    cfg = IntersectionConfig.model_validate(inter())
    act = PhaseActuator(cfg, clock)
    plan = SignalPlanner(cfg).plan({"north": 600, "south": 300, "east": 300})
    act.set_plan(plan)
    start = clock.t
    ch = []
    for _ in range(100):  # no presence at all
        clock.t += 1
        iv = act.tick(clock.t)
        if iv is not None:
            ch.append((clock.t - start, iv))
    greens = [t for t, iv in ch if iv.kind == "yellow"]
    assert ch[0][1].reason == "fixed time (presence stale)"
    assert greens[0] == pytest.approx(plan.phases[0].green_s, abs=1.0)


def test_demand_chooses_the_next_phase_and_skips_empty_ones() -> None:
    doc = inter()
    doc["phases"].append({"id": "s", "approaches": ["south"], "yellow_s": 3, "all_red_s": 2, "min_green_s": 5})
    clock = Clock()
    act = PhaseActuator(IntersectionConfig.model_validate(doc), clock)
    ch = run(act, clock, 12, cam_e=(0, 0, 0), cam_s=(4, 4, 0))  # phase e has nobody: s comes next
    assert [(iv.phase, iv.kind) for _, iv in ch][-1] == ("s", "green")


def test_presence_parsing_and_config_errors() -> None:
    with pytest.raises(ValueError, match="queue_veh must be a number"):
        parse_presence({"lanes": [{"lane_id": "a", "queue_veh": -1}]}, 0.0)
    with pytest.raises(ValueError, match="schema"):
        parse_presence({"schema": "other", "lanes": []}, 0.0)
    at, lanes = parse_presence({"at": "2024-05-06T08:00:01Z", "lanes": [{"lane_id": "a", "vehicles": 2}]}, 0.0)
    assert at == pytest.approx(1714982401.0) and lanes[0][1].vehicles == 2
    doc = inter()
    doc["approaches"][2]["presence"] = []
    text = json.dumps({"intersections": [doc]})
    with pytest.raises(ConfigError, match="actuation needs presence lanes on every approach; none on east"):
        parse_controller_config(text)


def test_controller_wiring_presence_to_phase_topic(tmp_path: Path) -> None:
    clock = Clock()
    c = Controller(config(tmp_path, intersections=[inter()]), connect=False, clock=clock)
    try:
        assert c.ingestor.on_presence is not None
        ch: dict[str, Any] = {}
        for _ in range(30):
            clock.t += 1
            for cam, lane, near in (("cam-n", "n0", 0), ("cam-s", "s0", 0), ("cam-e", "e0", 1)):
                doc = {"schema": "edge-agent/presence", "schema_version": 1, "camera_id": cam,
                       "lanes": [{"lane_id": lane, "vehicles": 2 * near, "queue_veh": near, "near_veh": near}]}
                c.ingestor.handle(f"city/{cam}/presence", json.dumps(doc).encode(), clock.t)
            ch.update(c.decider.tick_phases())
        c.ingestor.handle("city/cam-n/presence", b'{"lanes": [{"lane_id": "n0", "vehicles": "x"}]}', clock.t)
        assert c.ingestor.snapshot().get("invalid.presence") == 1
        msgs = [m for m in c._published if m.topic == "city/signals/main-x/phase"]
        assert msgs and all(m.retain for m in msgs)
        for m in msgs:
            jsonschema.validate(json.loads(m.payload), load_schema("controller-signal-phase.v1"))
        assert json.loads(msgs[-1].payload)["phase"] == "e" and ch["main-x"].phase == "e"
    finally:
        c.close()
