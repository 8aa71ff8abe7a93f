"""The decision round: flows from the store -> signal plans, lighting levels, recommendations, alerts.

Ingestion scales out over replicas (shared subscription); decisions are made
by the replica(s) with ``decide`` on, from what *all* replicas stored, so that
every decision sees every camera. Each round:

1. node health: silent cameras (no statistics for ``silent_after_intervals``
   of their interval, or an ``offline`` status) raise one alert per outage;
2. new intervals since the last round feed the anomaly baselines and the
   occupancy counters of service options;
3. each intersection gets a Webster plan, published retained on
   ``{prefix}/signals/{id}/plan``;
4. each lighting segment gets a level; a change is published retained on
   ``{prefix}/lighting/{id}/set``;
5. each service area gets a ranking, published retained on
   ``{prefix}/services/{id}/recommendations``.

Forecasts: a :class:`Forecaster` (``forecast: {enabled: true}`` in the YAML
gives :class:`~edge_agent.controller.forecast_decisions.DecisionForecaster`,
fed here with every new interval record) is asked for every line's flow over
the validity window; where it answers (a warm line), its value replaces the
measured one in plans and the plan says ``"source": "forecast"`` (``mixed``
when only some lines had one), unless a fresh measurement differs from it by
more than ``forecast.live_tolerance`` (live correction, noted in the plan).
Lighting gets a 24 h schedule from the forecast, published on
``{prefix}/lighting/{id}/schedule`` once an hour; live counts set the level,
and without them the schedule's planned volume does (not full power).

Presence: intersections with an ``actuation`` section get a
:class:`~edge_agent.controller.actuation.PhaseActuator`, fed by the ingest's
presence hook (:meth:`Decider.presence`), bounded by each new plan, and ticked
by :meth:`Decider.tick_phases` (the controller's phase thread).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge_agent.controller.actuation import Interval, PhaseActuator
from edge_agent.controller.anomalies import AnomalyDetector
from edge_agent.controller.config import AreaConfig, ControllerConfig, HealthConfig, LineRef
from edge_agent.controller.forecast_decisions import DecisionForecaster
from edge_agent.controller.lighting import DimmingController
from edge_agent.controller.mqtt_io import Outbound
from edge_agent.controller.services import ATTRIBUTES, bpr_time, fit_mnl, probabilities
from edge_agent.controller.signals import SignalPlanner, plan_payload
from edge_agent.controller.store import Store
from edge_agent.controller.timeutil import hour_of_day, iso

log = logging.getLogger(__name__)


class Forecaster(Protocol):
    """What a flow forecaster offers the decision round (implemented in controller/forecast.py)."""

    def flow_veh_h(self, camera_id: str, line_id: str, direction: str, start_ts: float,
                   end_ts: float) -> float | None:
        """Expected mean flow over [start_ts, end_ts), or None when it has no forecast."""
        ...


class Publisher(Protocol):
    def publish(self, message: Outbound) -> None: ...


def signal_topic(prefix: str, intersection: str) -> str:
    return f"{prefix}/signals/{intersection}/plan"


def phase_topic(prefix: str, intersection: str) -> str:
    return f"{prefix}/signals/{intersection}/phase"


def lighting_topic(prefix: str, segment: str) -> str:
    return f"{prefix}/lighting/{segment}/set"


def schedule_topic(prefix: str, segment: str) -> str:
    return f"{prefix}/lighting/{segment}/schedule"


def services_topic(prefix: str, area: str) -> str:
    return f"{prefix}/services/{area}/recommendations"


def alerts_topic(prefix: str, kind: str) -> str:
    return f"{prefix}/alerts/{kind}"


@dataclass(frozen=True)
class LineFlow:
    vehicles: int
    observed_s: float
    last_end: float

    @property
    def veh_h(self) -> float:
        return self.vehicles * 3600.0 / self.observed_s if self.observed_s > 0 else 0.0


class Decider:
    def __init__(self, cfg: ControllerConfig, store: Store, publisher: Publisher,
                 forecaster: Forecaster | None = None, clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.store = store
        self.publisher = publisher
        self.forecaster = forecaster
        self.clock = clock
        self.prefix = cfg.mqtt.topic_prefix
        self.planners = {i.id: SignalPlanner(i) for i in cfg.intersections}
        self.actuators = {i.id: PhaseActuator(i, clock) for i in cfg.intersections
                          if i.actuation is not None and i.actuation.enabled}
        self.dimmers = {s.id: DimmingController(s) for s in cfg.lighting.segments}
        self.areas = {a.id: a for a in cfg.services.areas}
        self.betas = {a.id: np.array([getattr(a.coefficients, k) for k in ATTRIBUTES]) for a in cfg.services.areas}
        self.fits: dict[str, dict[str, Any]] = {}
        self.anomalies = AnomalyDetector(cfg.anomalies)
        self.net_counts: dict[tuple[str, str, str], int] = {}  # (camera, line, direction) vehicles since start
        self.cursor = 0  # last stats id fed to anomalies/occupancy
        self.silent: set[str] = set()
        self.overrides: dict[str, tuple[float, float]] = {}  # segment -> (level, until)
        self.latest: dict[str, dict[str, dict[str, Any]]] = {"plan": {}, "lighting": {}, "recommendations": {},
                                                             "lighting_schedule": {}}
        self.forecast_live = forecaster if isinstance(forecaster, DecisionForecaster) else None
        self._schedule_hour: dict[str, int] = {}
        self.rounds = 0
        self.lock = threading.RLock()
        self._choices_fitted: dict[str, int] = {}
        self._published_lighting: set[str] = set()

    # ------------------------------------------------------------ flows
    def line_flows(self, now: float) -> dict[tuple[str, str, str], LineFlow]:
        samples = self.store.line_samples(now - self.cfg.control.stale_after_s, self.cfg.control.flow_intervals)
        acc: dict[tuple[str, str, str], list[float]] = {}
        for s in samples:
            a = acc.setdefault((s.camera_id, s.line_id, s.direction), [0, 0.0, 0.0])
            a[0] += s.vehicles
            a[1] += s.observed_s
            a[2] = max(a[2], s.end_ts)
        return {k: LineFlow(int(v[0]), v[1], v[2]) for k, v in acc.items()}

    def ref_flow(self, refs: list[LineRef], flows: dict[tuple[str, str, str], LineFlow], now: float,
                 missing: list[str], use_forecast: bool = True,
                 notes: list[str] | None = None) -> tuple[float | None, str]:
        """Sum of the referenced lines' flows (veh/h); None when none of them has data.

        With a forecaster (and ``use_forecast``), a line's flow is its forecast over the validity window,
        unless a fresh measured flow differs from it by more than ``forecast.live_tolerance`` (live correction).
        """
        total, seen, sources = 0.0, False, set()
        horizon = self.cfg.plan_validity_s
        tol = self.cfg.forecast
        for r in refs:
            for d in (("in", "out") if r.direction == "both" else (r.direction,)):
                fc = (self.forecaster.flow_veh_h(r.camera, r.line, d, now, now + horizon)
                      if self.forecaster is not None and use_forecast else None)
                f = flows.get((r.camera, r.line, d))
                if fc is not None and f is not None and abs(f.veh_h - fc) > max(tol.live_tolerance * fc,
                                                                                 tol.live_tolerance_veh_h):
                    if notes is not None:
                        notes.append(f"{r.camera}/{r.line}/{d}: measured {f.veh_h:.0f} veh/h replaces the forecast "
                                     f"{fc:.0f} (live correction)")
                    fc = None
                if fc is not None:
                    total, seen = total + fc, True
                    sources.add("forecast")
                    continue
                if f is None:
                    missing.append(f"{r.camera}/{r.line}/{d}")
                    continue
                total, seen = total + f.veh_h, True
                sources.add("measured")
        source = "mixed" if len(sources) > 1 else (sources.pop() if sources else "measured")
        return (total if seen else None), source

    # ------------------------------------------------------------ round
    def run_round(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            flows = self.line_flows(now)
            self._health(now)
            self._new_intervals(now)
            for iid in self.planners:
                self._signal(iid, flows, now)
            for sid in self.dimmers:
                self._lighting(sid, flows, now)
            for aid in self.areas:
                self._services(aid, flows, now)
            self.rounds += 1
            return {"at": now, "lines": len(flows)}

    def _publish(self, topic: str, doc: dict[str, Any], retain: bool) -> None:
        self.publisher.publish(Outbound(topic, json.dumps(doc, separators=(",", ":")).encode(), qos=1, retain=retain))

    def _alert(self, kind: str, subject: str, message: str, details: dict[str, Any], now: float) -> None:
        log.warning("alert %s: %s", kind, message)
        self.store.add_alert(kind, subject, message, details, now)
        self._publish(alerts_topic(self.prefix, kind), {"schema": "edge-agent/alert", "schema_version": 1,
                                                        "kind": kind, "subject": subject, "message": message,
                                                        "at": iso(now), "details": details}, retain=False)

    def _health(self, now: float) -> None:
        for n in self.store.nodes():
            cam = n["camera_id"]
            why = self.silence_reason(n, now)
            if why and cam not in self.silent:
                self.silent.add(cam)
                self._alert("camera_silent", cam, f"camera {cam} is silent: {why}", {"node": n}, now)
            elif not why and cam in self.silent:
                self.silent.discard(cam)
                self._alert("camera_back", cam, f"camera {cam} reports again", {}, now)

    def silence_reason(self, node: dict[str, Any], now: float) -> str | None:
        return silence_reason(node, now, self.cfg.health)

    def _new_intervals(self, now: float) -> None:
        samples = self.store.new_line_samples(self.cursor)
        for s in samples:
            self.cursor = max(self.cursor, s.stats_id)
            key = (s.camera_id, s.line_id, s.direction)
            self.net_counts[key] = self.net_counts.get(key, 0) + s.vehicles
            if self.forecast_live is not None:
                self.forecast_live.observe(s.camera_id, s.line_id, s.direction, s.start_ts, s.end_ts, s.observed_s,
                                           s.vehicles)
            length = s.end_ts - s.start_ts
            a = self.anomalies.observe(s.camera_id, s.line_id, s.direction, s.start_ts, length, s.observed_s,
                                       s.vehicles)
            if a is not None:
                self._alert("unusual_flow", a.subject, a.message(),
                            {"flow_veh_h": round(a.flow_veh_h, 1), "mean_veh_h": round(a.mean_veh_h, 1),
                             "std_veh_h": round(a.std_veh_h, 1), "z": round(a.z, 2), "samples": a.samples,
                             "interval_start": iso(s.start_ts)}, now)

    # ------------------------------------------------------------ signals
    def _signal(self, iid: str, flows: dict[tuple[str, str, str], LineFlow], now: float) -> None:
        planner = self.planners[iid]
        approach_flows: dict[str, float | None] = {}
        sources = set()
        lines_missing: list[str] = []
        corrections: list[str] = []
        for a in planner.cfg.approaches:
            approach_flows[a.id], src = self.ref_flow(a.flows, flows, now, lines_missing, notes=corrections)
            if approach_flows[a.id] is not None:
                sources.add(src)
        if all(v is None for v in approach_flows.values()):
            return  # nothing measured yet: keep the last plan (or the controller's own fixed plan)
        plan = planner.plan(approach_flows)
        plan.notes.extend(corrections)
        if iid in self.actuators:
            self.actuators[iid].set_plan(plan)
        used = [f for (c, ln, d), f in flows.items()]
        window = {"intervals_per_line": self.cfg.control.flow_intervals,
                  "latest_interval_end": iso(max((f.last_end for f in used), default=None)),
                  "lines_missing": sorted(set(lines_missing))}
        doc = plan_payload(plan, now, now + self.cfg.plan_validity_s,
                           sources.pop() if len(sources) == 1 else "mixed",
                           window)
        self.latest["plan"][iid] = doc
        self.store.add_decision("plan", iid, doc, now)
        self._publish(signal_topic(self.prefix, iid), doc, retain=True)

    # ------------------------------------------------------------ presence-driven phases
    def presence(self, camera: str, doc: dict[str, Any]) -> None:
        """The Ingestor's ``on_presence`` hook: feed every intersection that has lanes on this camera."""
        from edge_agent.controller.ingest import Invalid

        now = self.clock()
        with self.lock:
            for act in self.actuators.values():
                try:
                    act.on_presence(camera, doc, now)
                except ValueError as exc:
                    raise Invalid("presence", str(exc)) from None

    def tick_phases(self, now: float | None = None) -> dict[str, Interval]:
        """Advance every actuated intersection; publish and return the intervals that changed."""
        now = self.clock() if now is None else now
        changed: dict[str, Interval] = {}
        with self.lock:
            for iid, act in self.actuators.items():
                iv = act.tick(now)
                if iv is not None:
                    changed[iid] = iv
                    self._publish(phase_topic(self.prefix, iid), iv.to_json(iid), retain=True)
        return changed

    # ------------------------------------------------------------ lighting
    def _lighting(self, sid: str, flows: dict[tuple[str, str, str], LineFlow], now: float) -> None:
        dim = self.dimmers[sid]
        missing: list[str] = []
        flow, _ = self.ref_flow(dim.cfg.flows, flows, now, missing, use_forecast=False)
        schedule = self._lighting_schedule(sid, flow, now)
        override = self.overrides.get(sid)
        reason = "traffic"
        if flow is None and schedule is not None:
            at = self.forecast_live.level_now(schedule, now) if self.forecast_live else None
            if at is not None:
                flow, reason = at[1], "no fresh traffic data: planned volume of the forecast schedule"
        if override is not None and override[1] > now:
            dim.state.flow_veh_h = flow
            level_before = dim.state.level
            dim.update(flow, now, hour_of_day(now))
            dim.state.level = override[0]
            changed = level_before != override[0]
            reason = "operator override"
        else:
            if override is not None:
                del self.overrides[sid]
            changed = dim.update(flow, now, hour_of_day(now))
            if flow is None:
                reason = "no fresh traffic data: full power (fail safe)"
            elif schedule is not None and reason == "traffic":
                reason = "traffic (live correction of the forecast schedule)"
        st = dim.state
        doc = {"schema": "edge-agent/lighting-set", "schema_version": 1, "segment": sid,
               "level": round(st.level or 1.0, 3), "at": iso(now), "reason": reason,
               "flow_veh_h": None if flow is None else round(flow, 1), "lines_missing": sorted(set(missing)),
               "energy": {"used_kwh": round(st.energy_kwh, 4), "always_full_kwh": round(st.baseline_kwh, 4),
                          "saved_kwh": round(dim.saved_kwh, 4),
                          "model": "least_squares" if dim.model.fitted else "nameplate",
                          "meter_readings": dim.model.n,
                          "forecast_next_hour_kwh": round(dim.model.kwh_per_h(st.level or 1.0, flow or 0.0,
                                                                              hour_of_day(now + 1800)), 4)}}
        self.latest["lighting"][sid] = doc
        if changed or sid not in self._published_lighting:
            self._published_lighting.add(sid)
            self.store.add_decision("lighting", sid, doc, now)
            self._publish(lighting_topic(self.prefix, sid), doc, retain=True)

    def _lighting_schedule(self, sid: str, live: float | None, now: float) -> dict[str, Any] | None:
        """Tonight's schedule from the forecast, recomputed and published once per hour (None without one)."""
        fl = self.forecast_live
        if fl is None or not self.cfg.forecast.lighting_schedule:
            return None
        hour = int(now // 3600)
        doc = self.latest["lighting_schedule"].get(sid)
        if doc is not None and self._schedule_hour.get(sid) == hour:
            return doc
        doc = fl.lighting_schedule(self.dimmers[sid].cfg, now, live)
        if doc is None:
            return None
        self._schedule_hour[sid] = hour
        self.latest["lighting_schedule"][sid] = doc
        self.store.add_decision("lighting_schedule", sid, doc, now)
        self._publish(schedule_topic(self.prefix, sid), doc, retain=True)
        return doc

    def override_lighting(self, sid: str, level: float, until: float) -> dict[str, Any]:
        """Operator command: hold a segment at ``level`` until ``until`` (Unix s)."""
        if sid not in self.dimmers:
            raise KeyError(f"unknown segment {sid!r}; segments: {', '.join(self.dimmers) or 'none'}")
        if not 0 <= level <= 1:
            raise ValueError(f"level must be in [0, 1], got {level}")
        with self.lock:
            self.overrides[sid] = (level, until)
            self._lighting(sid, self.line_flows(self.clock()), self.clock())
            return self.latest["lighting"][sid]

    def meter_reading(self, sid: str, doc: dict[str, Any], received_at: float) -> None:
        """A metered energy reading {"start", "end", "kwh"} of a lighting segment trains its energy model."""
        from edge_agent.controller.ingest import Invalid, _epoch

        dim = self.dimmers.get(sid)
        if dim is None:
            raise Invalid("unknown_subject", f"no lighting segment {sid!r} in the configuration")
        try:
            start, end, kwh = _epoch(doc["start"]), _epoch(doc["end"]), float(doc["kwh"])
        except (KeyError, TypeError, ValueError) as exc:
            raise Invalid("meter", f"expected {{start, end (ISO 8601 UTC), kwh}}: {exc}") from None
        if end <= start or kwh < 0:
            raise Invalid("meter", f"expected end > start and kwh >= 0, got {doc}")
        with self.lock:
            level = float(doc.get("level", dim.state.level or 1.0))
            flow = float(dim.state.flow_veh_h or 0.0)
            if self.store.add_meter(sid, start, end, kwh, level, flow, received_at):
                dim.model.observe(level, flow, hour_of_day((start + end) / 2), kwh * 3600 / (end - start))

    # ------------------------------------------------------------ services
    def attributes(self, area: AreaConfig, flows: dict[tuple[str, str, str], LineFlow], now: float) -> np.ndarray:
        """(J, 3) travel_time_min, occupancy, distance_km of each option."""
        rows = []
        for o in area.options:
            flow, _ = self.ref_flow(o.route, flows, now, []) if o.route else (0.0, "measured")
            t = bpr_time(o.free_flow_min, flow or 0.0, o.route_capacity_veh_h)
            occ = 0.0
            if o.occupancy is not None and o.capacity:
                inside = sum(self.net_counts.get((o.occupancy.entry.camera, o.occupancy.entry.line, d), 0)
                             for d in _dirs(o.occupancy.entry.direction)) - \
                    sum(self.net_counts.get((o.occupancy.exit.camera, o.occupancy.exit.line, d), 0)
                        for d in _dirs(o.occupancy.exit.direction))
                occ = min(max(inside, 0), o.capacity) / o.capacity
            rows.append([t, occ, o.distance_km])
        return np.array(rows)

    def _services(self, aid: str, flows: dict[tuple[str, str, str], LineFlow], now: float) -> None:
        area = self.areas[aid]
        self._maybe_refit(area)
        x = self.attributes(area, flows, now)
        asc = np.array([o.asc for o in area.options])
        p = probabilities(x, self.betas[aid], asc)
        order = np.argsort(-p, kind="stable")
        doc = {"schema": "edge-agent/service-recommendations", "schema_version": 1, "area": aid, "at": iso(now),
               "model": {"kind": "multinomial_logit",
                         "coefficients": {k: round(float(b), 5) for k, b in zip(ATTRIBUTES, self.betas[aid])},
                         "source": "fitted" if aid in self.fits else "configured", **self.fits.get(aid, {})},
               "options": [{"rank": r + 1, "id": area.options[j].id, "name": area.options[j].name,
                            "probability": round(float(p[j]), 4),
                            "utility": round(float(x[j] @ self.betas[aid] + asc[j]), 4),
                            "travel_time_min": round(float(x[j, 0]), 2), "occupancy": round(float(x[j, 1]), 3),
                            "distance_km": float(x[j, 2])} for r, j in enumerate(order)]}
        self.latest["recommendations"][aid] = doc
        self.store.add_decision("recommendations", aid, doc, now)
        self._publish(services_topic(self.prefix, aid), doc, retain=True)

    def choice(self, aid: str, doc: dict[str, Any], received_at: float) -> None:
        """An observed choice {"option": id} in an area: stored with the attributes everyone saw then."""
        from edge_agent.controller.ingest import Invalid

        area = self.areas.get(aid)
        if area is None:
            raise Invalid("unknown_subject", f"no service area {aid!r} in the configuration")
        ids = [o.id for o in area.options]
        if doc.get("option") not in ids:
            raise Invalid("choice", f"option {doc.get('option')!r} is not one of {', '.join(ids)}")
        with self.lock:
            x = self.attributes(area, self.line_flows(received_at), received_at)
            self.store.add_choice(aid, doc["option"], {"x": x.tolist()}, received_at)

    def _maybe_refit(self, area: AreaConfig) -> None:
        if area.fit_min_choices is None:
            return
        rows = self.store.choices(area.id)
        if len(rows) < area.fit_min_choices or len(rows) == self._choices_fitted.get(area.id):
            return
        ids = [o.id for o in area.options]
        x = np.array([a["x"] for _, a in rows])
        y = np.array([ids.index(o) for o, _ in rows])
        fit = fit_mnl(x, y, asc=np.array([o.asc for o in area.options]), beta0=self.betas[area.id])
        self._choices_fitted[area.id] = len(rows)
        if fit.converged and np.all(np.isfinite(fit.beta)):
            self.betas[area.id] = fit.beta
            self.fits[area.id] = {"observations": fit.n, "log_likelihood": round(fit.log_likelihood, 3),
                                  "std_err": {k: round(float(s), 5) for k, s in zip(ATTRIBUTES, fit.std_err)}}
            log.info("area %s: logit refitted on %d choices: %s", area.id, fit.n, fit.beta.round(4).tolist())
        else:
            log.warning("area %s: logit fit on %d choices did not converge; keeping %s", area.id, fit.n,
                        self.betas[area.id].tolist())


def silence_reason(node: dict[str, Any], now: float, health: HealthConfig) -> str | None:
    """Why a node counts as silent (offline status, or no statistics for too long), or None."""
    if node.get("status") == "offline":
        return "status offline"
    last = node.get("last_stats_at")
    if last is None:
        return None if node.get("status") == "online" else "never sent statistics"
    limit = max(health.silent_after_intervals * (node.get("interval_s") or 60.0), health.silent_after_s_min)
    if now - last > limit:
        return f"no statistics for {now - last:.0f} s (limit {limit:.0f} s)"
    return None


def _dirs(direction: str) -> tuple[str, ...]:
    return ("in", "out") if direction == "both" else (direction,)
