"""The forecaster in the decisions: a controller run on three weeks of realistic hourly records.

Records go in as the agents publish them (statistics messages through ``Ingestor.handle``), the decision
round feeds them online to the per-line forecasters, and then: the signal plan says ``source: forecast``,
a fresh measurement far from the forecast replaces it (live correction), and each lighting segment gets a
24 h schedule from the forecast (darkness at the configured latitude, the segment's own steps), which also
carries the lamps through a camera outage instead of going to full power.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import numpy as np
import pytest

from edge_agent.controller.app import Controller
from edge_agent.controller.forecast_decisions import DecisionForecaster
from edge_agent.messages import load_schema
from test_controller_support import config, stats_bytes

TZ = ZoneInfo("America/Chicago")
START = datetime(2024, 5, 6, tzinfo=TZ).astimezone(timezone.utc)  # Monday 00:00 local
HOURS = 22 * 24 + 13  # three weeks and a day, up to Tuesday 28 May 13:00 local (Memorial Day on the way)
SCALE = {"cam-n": 1.0, "cam-s": 0.8, "cam-e": 0.6}


def profile(local: datetime) -> float:
    """veh/h of a city approach: morning and evening peaks on weekdays, a late broad hump at weekends."""
    h = local.hour + 0.5
    if local.weekday() < 5:
        return 40 + 520 * math.exp(-0.5 * ((h - 8) / 1.3) ** 2) + 460 * math.exp(-0.5 * ((h - 17) / 1.8) ** 2) \
            + 220 * (10 <= h <= 16)
    return 30 + 320 * math.exp(-0.5 * ((h - 14) / 3.5) ** 2)


def feed_history(c: Controller, hours: int, rng: np.random.Generator, now: list[float]) -> None:
    for k in range(hours):
        start = START + timedelta(hours=k)
        for cam, s in SCALE.items():
            mean = s * profile(start.astimezone(TZ))
            n_in, n_out = int(rng.poisson(mean)), int(rng.poisson(0.6 * mean))
            topic, payload = stats_bytes(cam, start, {"stop": (n_in, n_out)}, length_s=3600)
            c.ingestor.handle(topic, payload, start.timestamp() + 3600)
        if k % 24 == 23:  # a decision round a day keeps the replay close to a live run
            now[0] = (start + timedelta(hours=1)).timestamp()
            assert c.ingestor.flush()
            c.decider.run_round()
    assert c.ingestor.flush()


@pytest.fixture()
def run(tmp_path: Path) -> Any:
    now = [START.timestamp()]
    segment = {"id": "main-street", "rated_power_w": 1000,
               "flows": [{"camera": "cam-n", "line": "stop", "direction": "both"}],
               "steps": [{"min_flow_veh_h": 0, "level": 0.3}, {"min_flow_veh_h": 150, "level": 0.6},
                         {"min_flow_veh_h": 400, "level": 1.0}], "hysteresis_veh_h": 20, "min_level": 0.2}
    cfg = config(tmp_path, control={"period_s": 60, "flow_intervals": 1, "stale_after_s": 3600},
                 lighting={"segments": [segment]},
                 forecast={"enabled": True, "tz": "America/Chicago", "latitude": 44.98, "longitude": -93.27})
    c = Controller(cfg, connect=False, clock=lambda: now[0])
    assert isinstance(c.decider.forecaster, DecisionForecaster)
    feed_history(c, HOURS, np.random.default_rng(7), now)
    yield c, now
    c.close()


def published(c: Controller) -> dict[str, dict[str, Any]]:
    return {m.topic: json.loads(m.payload) for m in c._published}


def test_plan_from_the_forecast_then_live_correction(run: Any) -> None:
    c, now = run
    end = START + timedelta(hours=HOURS)  # Tuesday 13:00 local; the 12-13 h record is in
    now[0] = end.timestamp() + 600
    c._published.clear()
    c.decider.run_round()
    plan = published(c)["city/signals/main-x/plan"]
    jsonschema.validate(plan, load_schema("controller-signal-plan.v1"))
    assert plan["flows_used"]["source"] == "forecast", plan
    fc = c.decider.forecaster
    expect = fc.flow_veh_h("cam-n", "stop", "in", now[0], now[0] + c.cfg.plan_validity_s)
    assert plan["flows_used"]["veh_h"]["north"] == pytest.approx(expect, abs=0.1)
    truth = profile(end.astimezone(TZ))  # the hour being planned (13-14 h local)
    assert abs(expect - truth) < 0.25 * truth, (expect, truth)
    assert fc.records >= HOURS * 3 * 2 and fc.refused == 0

    # an incident: the north camera counts three times the usual -> measured replaces the forecast
    topic, payload = stats_bytes("cam-n", end, {"stop": (int(3 * truth / 6), 0)}, length_s=600)
    c.ingestor.handle(topic, payload, now[0])
    assert c.ingestor.flush()
    c._published.clear()
    now[0] += 5
    c.decider.run_round()
    plan = published(c)["city/signals/main-x/plan"]
    assert plan["flows_used"]["source"] == "mixed"
    assert plan["flows_used"]["veh_h"]["north"] == pytest.approx(3 * truth // 6 * 6, rel=0.01)
    assert any("live correction" in n for n in plan["notes"])


def test_lighting_schedule_from_the_forecast_and_outage_fallback(run: Any) -> None:
    c, now = run
    end = START + timedelta(hours=HOURS)
    now[0] = end.timestamp() + 600
    c._published.clear()
    c.decider.run_round()
    out = published(c)
    sched = out["city/lighting/main-street/schedule"]
    jsonschema.validate(sched, load_schema("controller-lighting-schedule.v1"))
    assert sched["source"] == "forecast" and len(sched["hours"]) == 24
    hours = {datetime.fromisoformat(h["start"].replace("Z", "+00:00")).astimezone(TZ).hour: h
             for h in sched["hours"]}
    # Minneapolis, 28-29 May: sunset about 20:45, sunrise about 05:30 local
    assert hours[14]["dark_fraction"] == 0 and hours[14]["level"] == 0
    # the segment (cam-n in + out) carries about 1.6 x 40 veh/h at night, planned with the margin ~110 < 150
    assert hours[1]["dark_fraction"] == 1 and hours[1]["level"] == pytest.approx(0.3)
    assert 0 < hours[20]["dark_fraction"] < 1 and hours[20]["level"] == pytest.approx(0.6)  # dusk, ~250 veh/h
    assert all(h["planned_veh_h"] >= h["forecast_veh_h"] for h in sched["hours"])
    assert hours[1]["day_type"] == "weekday" and hours[1]["source"] == "forecast"
    assert 0 < sched["night_energy_fraction"] < 1
    light = out["city/lighting/main-street/set"]
    assert "live correction of the forecast schedule" in light["reason"]
    # camera outage at night (no fresh data for 4 h): the schedule's planned volume, not full power
    now[0] = (end + timedelta(hours=12)).timestamp()  # 01:00 local
    c._published.clear()
    c.decider.run_round()
    out = published(c)
    light = c.decider.latest["lighting"]["main-street"]
    assert light["reason"].startswith("no fresh traffic data: planned volume of the forecast schedule")
    assert light["level"] == pytest.approx(0.3)
    assert c.decisions("lighting_schedule")["main-street"]["hours"][0]["start"].endswith("06:00:00Z")


def test_forecast_section_defaults_off_and_validates_time_zone(tmp_path: Path) -> None:
    from edge_agent.config import ConfigError
    from edge_agent.controller.config import parse_controller_config

    c = Controller(config(tmp_path), connect=False)
    try:
        assert c.decider.forecaster is None
    finally:
        c.close()
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse_controller_config("forecast: {enabled: true, tz: Mars/Olympus}\n")
