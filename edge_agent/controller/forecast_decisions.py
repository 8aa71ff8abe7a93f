"""The forecaster in the decision round: next period's signal plans and tonight's lighting schedule.

:class:`DecisionForecaster` keeps a :class:`~edge_agent.controller.forecast.ForecastHub`
(one online forecaster per camera, line and direction), fed by the decision
round with every interval record the store receives (``Decider._new_intervals``:
the records of all replicas, in store order; on start the whole stored history
is replayed through the same path, so a restarted controller is warm again).

It answers the decision round's ``Forecaster`` question (``decide.py``) only for
lines whose forecaster is *warm* (every hour-of-week slot seen
``warmup_weeks`` times) and has counts less than a day old; otherwise it says
None and the round uses the measured flows. The round then applies the live
correction (``forecast.live_tolerance``): a fresh measured flow far from the
forecast wins.

Lighting: :meth:`DecisionForecaster.lighting_schedule` sums the forecasts of a
segment's lines and turns them into a 24 h schedule with
:func:`~edge_agent.controller.forecast.plan_lighting`: darkness from the sun's
elevation at the configured latitude/longitude, the segment's own dimming steps
as the rule, the forecast plus a margin of its recent error as the planned
volume, the day type (holiday name, weekday or weekend, from the calendar) in
the document, and the live flow as a floor for the current hour.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any

import numpy as np

from edge_agent.controller.config import ForecastConfig, LineRef, SegmentConfig
from edge_agent.controller.forecast import Forecast, ForecastHub, LightingRule, plan_lighting, us_holidays

log = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def _us_year(year: int) -> dict[date, str]:
    return us_holidays([year])


def _us_holiday(d: date) -> str | None:
    return _us_year(d.year).get(d)


def segment_rule(seg: SegmentConfig, cfg: ForecastConfig) -> LightingRule:
    """The segment's dimming steps (and minimum level) as a forecast lighting rule."""
    return LightingRule(thresholds_veh_h=tuple(s.min_flow_veh_h for s in seg.steps[1:]),
                        levels=tuple(max(s.level, seg.min_level) for s in seg.steps), margin=cfg.margin,
                        sun_elevation_deg=cfg.sun_elevation_deg, latitude=cfg.latitude, longitude=cfg.longitude)


class DecisionForecaster:
    """Online forecasts per line for the decision round (implements ``decide.Forecaster``)."""

    def __init__(self, cfg: ForecastConfig):
        self.cfg = cfg
        self.holiday = _us_holiday if cfg.holidays == "us" else None
        self.hub = ForecastHub(cfg.tz, self.holiday, warmup_weeks=cfg.warmup_weeks)
        self.records = 0
        self.refused = 0

    # ---------------------------------------------------------------- input
    def observe(self, camera: str, line: str, direction: str, start_ts: float, end_ts: float, observed_s: float,
                vehicles: float) -> None:
        """One interval record of one line and direction (the decision round calls this per stored sample)."""
        fc = self.hub.forecaster(camera, line, direction)
        try:
            fc.observe(datetime.fromtimestamp(start_ts, tz=timezone.utc),
                       datetime.fromtimestamp(end_ts, tz=timezone.utc), vehicles, observed_s)
            self.records += 1
        except ValueError as exc:  # an interval straddling an hour (not clock-aligned): not usable
            self.refused += 1
            if self.refused in (1, 10, 100, 1000):
                log.warning("forecaster: record of %s/%s/%s refused (%d so far): %s", camera, line, direction,
                            self.refused, exc)

    # ---------------------------------------------------------------- state
    def warm(self, camera: str, line: str, direction: str, now: float) -> bool:
        fc = self.hub.forecasters.get((camera, line, direction))
        if fc is None or fc._last_obs is None:
            return False
        fc.flush(datetime.fromtimestamp(now, tz=timezone.utc))
        return fc.profile.weeks_seen >= self.cfg.warmup_weeks

    def flow_veh_h(self, camera_id: str, line_id: str, direction: str, start_ts: float,
                   end_ts: float) -> float | None:
        """``decide.Forecaster``: the expected flow over the window, or None (not warm, or signals off)."""
        if not self.cfg.signals or not self.warm(camera_id, line_id, direction, start_ts):
            return None
        return self.hub.flow_veh_h(camera_id, line_id, direction, start_ts, end_ts)

    def forecast(self, refs: list[LineRef], now: float) -> Forecast | None:
        """The summed 24 h forecast of the referenced lines (directions), or None unless all are warm."""
        parts = []
        for r in refs:
            for d in (("in", "out") if r.direction == "both" else (r.direction,)):
                if not self.warm(r.camera, r.line, d, now):
                    return None
                parts.append(self.hub.forecasters[(r.camera, r.line, d)].forecast(
                    now=datetime.fromtimestamp(now, tz=timezone.utc)))
        if not parts:
            return None
        f0 = parts[0]
        if any(p.hour_starts != f0.hour_starts for p in parts):
            return None
        reasons = sorted({p.reason for p in parts if p.reason})
        return Forecast(f0.origin, f0.hour_starts, np.sum([p.flow_veh_h for p in parts], axis=0),
                        np.sum([p.seasonal_veh_h for p in parts], axis=0),
                        np.sum([np.nan_to_num(p.spread_veh_h) for p in parts], axis=0),
                        np.all([p.model_used for p in parts], axis=0), any(p.degraded for p in parts),
                        "; ".join(reasons) or None, max(p.hours_since_data for p in parts))

    def day_type(self, ts: float) -> str:
        from zoneinfo import ZoneInfo

        d = datetime.fromtimestamp(ts, tz=ZoneInfo(self.cfg.tz)).date()
        name = self.holiday(d) if self.holiday else None
        if name:
            return f"holiday: {name}"
        return "weekend" if d.weekday() >= 5 else "weekday"

    def lighting_schedule(self, seg: SegmentConfig, now: float, live_veh_h: float | None) -> dict[str, Any] | None:
        """The ``{prefix}/lighting/{segment}/schedule`` document (schema controller-lighting-schedule.v1)."""
        from edge_agent.controller.timeutil import iso

        fc = self.forecast(seg.flows, now)
        if fc is None:
            return None
        plan = plan_lighting(fc, segment_rule(seg, self.cfg), tz=self.cfg.tz, live_veh_h=live_veh_h)
        hours = []
        for j, h in enumerate(plan.hour_starts):
            hours.append({"start": iso(h.timestamp()), "dark_fraction": round(float(plan.dark[j]), 3),
                          "forecast_veh_h": round(float(fc.flow_veh_h[j]), 1),
                          "planned_veh_h": round(float(plan.planned_veh_h[j]), 1),
                          "level": round(float(plan.level[j]), 3), "source": plan.source[j],
                          "day_type": self.day_type(h.timestamp())})
        return {"schema": "edge-agent/lighting-schedule", "schema_version": 1, "segment": seg.id, "at": iso(now),
                "origin": iso(fc.origin.timestamp()), "source": "forecast", "degraded": fc.degraded,
                "reason": fc.reason, "live_veh_h": None if live_veh_h is None else round(live_veh_h, 1),
                "rule": {"thresholds_veh_h": [s.min_flow_veh_h for s in seg.steps[1:]],
                         "levels": [max(s.level, seg.min_level) for s in seg.steps], "margin": self.cfg.margin,
                         "sun_elevation_deg": self.cfg.sun_elevation_deg, "latitude": self.cfg.latitude,
                         "longitude": self.cfg.longitude},
                "night_energy_fraction": round(float(plan.energy.sum() / max(plan.dark.sum(), 1e-9)), 3),
                "hours": hours}

    def level_now(self, schedule: dict[str, Any], now: float) -> tuple[float, float] | None:
        """(level, planned veh/h) of the schedule's hour containing ``now``, or None."""
        for h in schedule["hours"]:
            start = datetime.fromisoformat(h["start"].replace("Z", "+00:00")).timestamp()
            if start <= now < start + 3600:
                return h["level"], h["planned_veh_h"]
        return None
