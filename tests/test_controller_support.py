"""Helpers shared by the controller tests (no tests here): real agent messages and a controller config."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from edge_agent.controller.config import ControllerConfig, parse_controller_config
from edge_agent.messages import stats_payload, stats_topic
from edge_agent.types import Direction, IntervalRecord, LineCounts

T0 = datetime(2024, 5, 6, 8, 0, tzinfo=timezone.utc)
VEHICLES = ("car", "motorcycle", "bus", "truck")


def stats_bytes(camera: str, start: datetime, counts: dict[str, tuple[int, int]], length_s: int = 60,
                observed_s: float | None = None, prefix: str = "city") -> tuple[str, bytes]:
    """(topic, payload) of a statistics message built by the agent's own encoder.

    ``counts``: line id -> (cars in, cars out).
    """
    lines = tuple(LineCounts(line, {Direction.IN: {"car": n_in} if n_in else {},
                                    Direction.OUT: {"car": n_out} if n_out else {}})
                  for line, (n_in, n_out) in counts.items())
    obs = float(length_s if observed_s is None else observed_s)
    rec = IntervalRecord(camera, start, start + timedelta(seconds=length_s), obs < length_s, lines, 100, 0, 12.5, obs)
    doc = stats_payload(rec, f"node-{camera}", VEHICLES)
    return stats_topic(prefix, camera), json.dumps(doc, separators=(",", ":")).encode()


CONFIG: dict[str, Any] = {
    "mqtt": {"topic_prefix": "city", "client_id": "ctrl-test"},
    "control": {"period_s": 0.5, "flow_intervals": 3, "stale_after_s": 600},
    "health": {"silent_after_intervals": 3, "silent_after_s_min": 1},
    "anomalies": {"min_samples": 5, "z_threshold": 3.0, "min_std_veh_h": 5},
    "intersections": [{
        "id": "main-x",
        "min_cycle_s": 30, "max_cycle_s": 120,
        "approaches": [
            {"id": "north", "lanes": 1, "saturation_flow_veh_h_lane": 1800,
             "flows": [{"camera": "cam-n", "line": "stop", "direction": "in"}]},
            {"id": "south", "lanes": 1, "saturation_flow_veh_h_lane": 1800,
             "flows": [{"camera": "cam-s", "line": "stop", "direction": "in"}]},
            {"id": "east", "lanes": 1, "saturation_flow_veh_h_lane": 1800,
             "flows": [{"camera": "cam-e", "line": "stop", "direction": "in"}]},
        ],
        "phases": [
            {"id": "ns", "approaches": ["north", "south"], "yellow_s": 3, "all_red_s": 2, "min_green_s": 5,
             "max_green_s": 80},
            {"id": "e", "approaches": ["east"], "yellow_s": 3, "all_red_s": 2, "min_green_s": 5, "max_green_s": 80},
        ],
    }],
    "lighting": {"segments": [{
        "id": "main-street", "rated_power_w": 1000,
        "flows": [{"camera": "cam-n", "line": "stop", "direction": "both"}],
        "steps": [{"min_flow_veh_h": 0, "level": 0.3}, {"min_flow_veh_h": 100, "level": 0.6},
                  {"min_flow_veh_h": 400, "level": 1.0}],
        "hysteresis_veh_h": 20, "min_level": 0.2}]},
    "services": {"areas": [{
        "id": "centre",
        "options": [
            {"id": "garage", "name": "Central garage", "distance_km": 0.5, "free_flow_min": 4,
             "route": [{"camera": "cam-n", "line": "stop", "direction": "in"}], "route_capacity_veh_h": 600,
             "capacity": 50, "occupancy": {"entry": {"camera": "cam-e", "line": "stop", "direction": "in"},
                                           "exit": {"camera": "cam-e", "line": "stop", "direction": "out"}}},
            {"id": "p-and-r", "name": "Park and ride", "distance_km": 3.0, "free_flow_min": 8},
        ]}]},
    "http": {"port": 0},
}


def config(tmp_path: Path, **overrides: Any) -> ControllerConfig:
    doc = json.loads(json.dumps(CONFIG))
    for key, value in overrides.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    doc.setdefault("store", {})["sqlite"] = str(tmp_path / "controller.db")
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump(doc))
    return parse_controller_config(path.read_text(), path)
