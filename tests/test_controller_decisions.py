"""Controller decision maths against textbook numbers and known generating models; config errors; imports."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import ConfigError
from edge_agent.controller.anomalies import AnomalyDetector, Welford
from edge_agent.controller.config import (
    AnomalyConfig,
    IntersectionConfig,
    SegmentConfig,
    parse_controller_config,
)
from edge_agent.controller.lighting import DimmingController, EnergyModel
from edge_agent.controller.services import bpr_time, fit_mnl, probabilities
from edge_agent.controller.signals import SignalPlanner, green_split, webster_cycle

# ------------------------------------------------------------------ Webster


def test_webster_two_roads_textbook() -> None:
    # Khanna & Justo, Highway Engineering (signal design by Webster's method), a classic exercise:
    # normal flows 500 and 300 pcu/h, saturation flow 1600 pcu/h on each road, total lost time 16 s
    # -> Y = 0.3125 + 0.1875 = 0.5, C0 = (1.5*16 + 5)/(1 - 0.5) = 58 s.
    assert webster_cycle(16, 500 / 1600 + 300 / 1600) == pytest.approx(58.0)


def test_webster_gate_2022_two_phases() -> None:
    # GATE CE 2022: two phases, lost time 3 s per phase, critical flow ratios 0.37 and 0.40
    # -> C0 = (1.5*6 + 5)/(1 - 0.77) = 60.87 s (the key accepts 60.7-61.0).
    assert webster_cycle(6, 0.37 + 0.40) == pytest.approx(60.87, abs=0.01)


def test_webster_plan_matches_worked_example_end_to_end() -> None:
    # GATE-style exercise: N-S critical flow 1000 veh/h at saturation 2500, E-W 900 at 3000; lost time 12 s
    # per cycle -> y = 0.4 and 0.3, C0 = (1.5*12 + 5)/(1 - 0.7) = 76.7 s ("77 s"), effective greens
    # (76.7 - 12) * 0.4/0.7 = 36.95 s and * 0.3/0.7 = 27.71 s.
    # Lost time per phase 6 s = start-up 2 + yellow 3 + all-red 3 - end gain 2.
    cfg = IntersectionConfig.model_validate({
        "id": "x", "min_cycle_s": 30, "max_cycle_s": 150, "startup_lost_s": 2, "extension_s": 2,
        "approaches": [
            {"id": "ns", "lanes": 1, "saturation_flow_veh_h_lane": 2500, "flows": [{"camera": "c", "line": "a"}]},
            {"id": "sn", "lanes": 1, "saturation_flow_veh_h_lane": 2500, "flows": [{"camera": "c", "line": "b"}]},
            {"id": "ew", "lanes": 2, "saturation_flow_veh_h_lane": 1500, "flows": [{"camera": "c", "line": "c"}]}],
        "phases": [
            {"id": "p1", "approaches": ["ns", "sn"], "yellow_s": 3, "all_red_s": 3, "min_green_s": 5},
            {"id": "p2", "approaches": ["ew"], "yellow_s": 3, "all_red_s": 3, "min_green_s": 5}]})
    plan = SignalPlanner(cfg).plan({"ns": 1000, "sn": 700, "ew": 900})
    assert plan.lost_time_s == pytest.approx(12)
    assert plan.flow_ratio_sum == pytest.approx(0.7)
    assert plan.webster_cycle_s == pytest.approx(76.67, abs=0.01)
    assert plan.cycle_s == pytest.approx(76.67, abs=0.01)
    assert [p.critical_approach for p in plan.phases] == ["ns", "ew"]
    assert [p.effective_green_s for p in plan.phases] == pytest.approx([36.95, 27.71], abs=0.01)
    # lost time per phase equals yellow + all-red here, so display green = effective green
    assert [p.green_s for p in plan.phases] == pytest.approx([36.95, 27.71], abs=0.01)
    # Webster's split equalises the degree of saturation: x = Y * C / (C - L) for every phase
    x = 0.7 * 76.67 / (76.67 - 12)
    assert list(plan.degree_of_saturation().values()) == pytest.approx([x, x], abs=1e-3)
    assert not plan.oversaturated and plan.missing == []


def _two_phase(**kw: object) -> IntersectionConfig:
    doc = {"id": "x", "min_cycle_s": 40, "max_cycle_s": 120,
           "approaches": [{"id": "a", "flows": [{"camera": "c", "line": "a"}]},
                          {"id": "b", "flows": [{"camera": "c", "line": "b"}]}],
           "phases": [{"id": "pa", "approaches": ["a"], "min_green_s": 7, "max_green_s": 60},
                      {"id": "pb", "approaches": ["b"], "min_green_s": 7, "max_green_s": 60,
                       "pedestrian_min_s": 20}]}
    doc.update(kw)
    return IntersectionConfig.model_validate(doc)


def test_oversaturation_caps_the_cycle_and_flags_the_plan() -> None:
    plan = SignalPlanner(_two_phase()).plan({"a": 1500, "b": 900})  # Y = 0.83 + 0.5 > 1
    assert plan.oversaturated and plan.webster_cycle_s is None
    assert plan.phases[0].green_s > plan.phases[1].green_s  # still split by flow ratio
    assert all(p.green_s <= 60 for p in plan.phases)
    assert plan.cycle_s <= 120 + 1e-9
    with pytest.raises(ValueError, match="demand exceeds capacity"):
        webster_cycle(10, 1.2)


def test_bounds_pedestrian_minimum_and_missing_flows() -> None:
    plan = SignalPlanner(_two_phase()).plan({"a": 300, "b": None})
    assert plan.missing == ["b"]
    assert plan.phases[1].green_s == pytest.approx(20)  # pedestrian minimum beats the flow-based share
    assert plan.phases[0].green_s >= 7
    quiet = SignalPlanner(_two_phase()).plan({"a": 0, "b": 0})
    assert quiet.cycle_s >= 40 - 1e-9  # min cycle, equal split, then the pedestrian minimum
    assert green_split(60, 10, [0.0, 0.0]) == [25.0, 25.0]


# ------------------------------------------------------------------ lighting and energy


def _segment() -> SegmentConfig:
    return SegmentConfig.model_validate({
        "id": "s", "rated_power_w": 1000, "flows": [{"camera": "c", "line": "a"}],
        "steps": [{"min_flow_veh_h": 0, "level": 0.3}, {"min_flow_veh_h": 100, "level": 0.6},
                  {"min_flow_veh_h": 400, "level": 1.0}], "hysteresis_veh_h": 20, "min_level": 0.4})


def test_dimming_steps_hysteresis_minimum_and_fail_safe() -> None:
    d = DimmingController(_segment())
    levels = []
    for flow in [50, 120, 450, 395, 385, 370, 110, 95, 79, 500, None]:
        d.update(flow, 0, 22)
        levels.append(d.state.level)
    # 50 -> 0.3 raised to min_level 0.4; up immediately at 100 and 400; down only below threshold - 20
    assert levels == [0.4, 0.6, 1.0, 1.0, 1.0, 0.6, 0.6, 0.6, 0.4, 1.0, 1.0]


def test_energy_saved_against_always_full_with_nameplate_model() -> None:
    d = DimmingController(_segment())
    d.update(50, 0, 0)          # level 0.4 for one hour
    d.update(50, 3600, 1)
    assert d.state.energy_kwh == pytest.approx(0.4)
    assert d.state.baseline_kwh == pytest.approx(1.0)
    assert d.saved_kwh == pytest.approx(0.6)


def test_energy_regression_recovers_the_generating_model() -> None:
    rng = np.random.default_rng(7)
    true = np.array([0.05, 0.9, 0.02, 0.01, -0.03])  # kWh/h: base, per level, per 1000 veh/h, sin, cos
    m = EnergyModel(rated_power_w=1000)
    assert m.coefficients is None and m.kwh_per_h(0.5, 0, 0) == pytest.approx(0.5)  # nameplate until fitted
    for _ in range(400):
        level, flow, hour = rng.uniform(0.2, 1), rng.uniform(0, 800), rng.uniform(0, 24)
        a = 2 * math.pi * hour / 24
        y = true @ [1, level, flow / 1000, math.sin(a), math.cos(a)] + rng.normal(0, 0.005)
        m.observe(level, flow, hour, y)
    assert m.coefficients == pytest.approx(true, abs=0.01)


# ------------------------------------------------------------------ services


def test_logit_probabilities_and_bpr() -> None:
    p = probabilities(np.array([[10.0, 0.5, 1.0], [20.0, 0.0, 3.0]]), np.array([-0.1, -2.0, -0.3]))
    v = np.array([-1 - 1 - 0.3, -2 - 0 - 0.9])
    assert p == pytest.approx(np.exp(v) / np.exp(v).sum())
    assert bpr_time(10, 1800, 1800) == pytest.approx(11.5)  # BPR: t0 (1 + 0.15 (v/c)^4)


def test_maximum_likelihood_recovers_known_coefficients_from_simulated_choices() -> None:
    rng = np.random.default_rng(42)
    n, j = 4000, 4
    beta = np.array([-0.12, -2.5, -0.4])
    x = np.stack([rng.uniform(3, 30, (n, j)), rng.uniform(0, 1, (n, j)), rng.uniform(0.2, 6, (n, j))], axis=2)
    p = probabilities(x, beta)
    chosen = np.array([rng.choice(j, p=row) for row in p])
    fit = fit_mnl(x, chosen)
    assert fit.converged
    assert np.all(np.abs(fit.beta - beta) < 3 * fit.std_err), (fit.beta, fit.std_err)
    assert fit.beta == pytest.approx(beta, rel=0.15)
    with pytest.raises(ValueError, match="chosen indices"):
        fit_mnl(x[:3], [0, 1, 7])


# ------------------------------------------------------------------ anomalies


def test_welford_and_z_score_alert() -> None:
    w = Welford()
    data = [10.0, 12.0, 9.0, 11.0, 13.0]
    for v in data:
        w.add(v)
    assert (w.mean, w.variance) == pytest.approx((np.mean(data), np.var(data, ddof=1)))
    det = AnomalyDetector(AnomalyConfig(min_samples=5, z_threshold=3, bin_minutes=60, min_std_veh_h=1))
    day = 86400.0
    t8 = 8 * 3600.0
    for k, veh in enumerate([10, 11, 9, 10, 12, 10]):  # same hour on six days: 600-720 veh/h
        assert det.observe("c", "l", "in", k * day + t8, 60, 60, veh) is None
    alert = det.observe("c", "l", "in", 6 * day + t8, 60, 60, 40)  # 2400 veh/h
    assert alert is not None and alert.z > 3 and "unusual flow on c/l/in" in alert.message()
    assert det.observe("c", "l", "in", 6 * day + t8 + 7200, 60, 60, 40) is None  # other hour: no baseline yet


# ------------------------------------------------------------------ configuration


def test_controller_config_errors_name_line_path_value_and_allowed(tmp_path: Path) -> None:
    text = """\
mqtt:
  topic_prefix: city
intersections:
  - id: x
    approaches:
      - {id: a, flows: [{camera: c, line: l}]}
    phases:
      - {id: p1, approaches: [a], yelow_s: 3}
      - {id: p2, approaches: [b]}
lighting:
  segments:
    - id: s
      rated_power_w: 100
      flows: [{camera: c, line: l, direction: sideways}]
http:
  host: 0.0.0.0
"""
    with pytest.raises(ConfigError) as exc:
        parse_controller_config(text, tmp_path / "c.yaml")
    msg = str(exc.value)
    assert "line 8: intersections[0].phases[0].yelow_s: unknown key; allowed keys here: id, approaches, " \
           "yellow_s" in msg
    assert "line 14: lighting.segments[0].flows[0].direction: Input should be 'in', 'out' or 'both', " \
           "got 'sideways'" in msg
    assert "host '0.0.0.0' is not a loopback address, so the API needs tokens" in msg
    with pytest.raises(ConfigError) as exc:
        parse_controller_config(text.replace("yelow_s", "yellow_s").replace("sideways", "in"))
    assert "line 4: intersections[0]: phase 'p2' names approach 'b', which is not defined; approaches: a" \
        in str(exc.value)
    with pytest.raises(ConfigError, match="duplicate key 'mqtt'"):
        parse_controller_config("mqtt: {}\nmqtt: {}\n")


def test_shipped_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    cfg = parse_controller_config((root / "configs/controller.yaml").read_text(), root / "configs/controller.yaml")
    assert cfg.intersections[0].id == "campus-junction" and cfg.mqtt.share_group == "controllers"


def test_controller_imports_without_the_vision_stack() -> None:
    code = """
import sys
for m in ("cv2", "onnxruntime", "edge_agent.detection", "edge_agent.tracking", "edge_agent.pipeline",
          "edge_agent.sources", "edge_agent.counting", "edge_agent.aggregation"):
    sys.modules[m] = None  # any import of these now raises ImportError
import edge_agent.controller.app, edge_agent.controller.api, edge_agent.controller.mqtt_io
import edge_agent.controller.__main__ as m
assert m.main(["-c", "configs/controller.yaml", "--check"]) == 0
"""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "configuration configs/controller.yaml: OK" in proc.stdout
