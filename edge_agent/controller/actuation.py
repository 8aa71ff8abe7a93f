"""Second-by-second phase control from the cameras' presence/queue stream, within Webster's bounds.

Webster's plan (``signals.py``) is computed once per control period from
interval counts: it knows the average demand, not where the cars are now. This
layer decides, every ``tick_s``, whether the phase on green keeps its green,
from the per-lane presence messages the cameras publish every 1-2 s on
``{prefix}/{camera}/presence``::

    {"schema": "edge-agent/presence", "schema_version": 1, "camera_id": "cam-n",
     "at": "2024-05-06T08:00:01.000Z",            # optional; default: time received
     "lanes": [{"lane_id": "n0",
                "vehicles": 7,       # vehicles in the lane's zone (the camera's view of the approach)
                "queue_veh": 5,      # of those, stopped (the queue)
                "near_veh": 1}]}     # vehicles within the extension zone just before the stop line

An approach lists its lanes as ``presence: ["cam-n:n0", ...]``.

Rules (a gap-out / extension controller with demand-driven phase choice; the
bounds come from the current Webster plan):

* a green lasts at least ``max(min_green_s, pedestrian_min_s)``;
* it ends at ``gmax = clamp(webster_green x max_green_factor, min, max_green_s)``
  (``max_green_s`` alone before the first plan);
* between the two it is extended while a vehicle is in the extension zone of a
  lane it serves (``near_veh`` > ``gap_out_veh``), and ends at the first gap;
* before Webster's green it is not ended while its own lanes still queue;
* it also ends once another phase queues more than ``queue_per_extending_veh``
  stopped vehicles per vehicle it still serves (moving in its extension zones or
  queued on its lanes), or once extending saves less delay than it costs
  (``extension_zone_s``): the vehicles leaving per second (``near_veh`` /
  ``extension_zone_s``) each save the red they would wait, both intergreens plus
  the next phase's queue-clearance time (start-up lost time + its longest lane
  queue at the approach's saturation flow, within that phase's green bounds),
  while every vehicle waiting or approaching on the next phase loses a second;
* with ``rest_in_green`` it is kept while no other phase has any vehicle
  waiting or approaching (no point in stopping a flow for nobody);
* the next phase is the one with the most vehicles in its zones (queued
  vehicles weigh ``queue_weight``), ties in cycle order: phases without demand
  are skipped;
* fail safe: when any configured lane's presence is older than
  ``stale_after_s`` the layer runs the Webster plan's fixed greens in cycle
  order (and says so in ``reason``).

The layer assumes it drives the signal from its start (first phase on green);
the output is the signal's interval (``green`` / ``yellow`` / ``all_red`` of a
phase); :class:`edge_agent.controller.app.Controller` publishes each change on
``{prefix}/signals/{intersection}/phase`` (schema controller-signal-phase.v1).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge_agent.controller.config import IntersectionConfig
from edge_agent.controller.signals import Plan

log = logging.getLogger(__name__)

PRESENCE_SCHEMA = "edge-agent/presence"


@dataclass
class LaneState:
    vehicles: int = 0
    queue_veh: int = 0
    near_veh: int = 0
    at: float = -math.inf


@dataclass(frozen=True)
class Interval:
    """What the signal shows now: ``kind`` of phase ``phase`` since ``since`` (Unix s)."""

    phase: str
    kind: str  # "green", "yellow" or "all_red"
    since: float
    reason: str

    def to_json(self, intersection: str) -> dict[str, Any]:
        from edge_agent.controller.timeutil import iso

        return {"schema": "edge-agent/signal-phase", "schema_version": 1, "intersection": intersection,
                "phase": self.phase, "interval": self.kind, "since": iso(self.since), "reason": self.reason}


def parse_presence(doc: Mapping[str, Any], received_at: float) -> tuple[float, list[tuple[str, LaneState]]]:
    """(time, [(lane_id, state)]) of a presence document; raises ValueError on a malformed one."""
    if doc.get("schema", PRESENCE_SCHEMA) != PRESENCE_SCHEMA:
        raise ValueError(f"schema {doc.get('schema')!r} is not {PRESENCE_SCHEMA!r}")
    at = received_at
    if isinstance(doc.get("at"), str):
        at = datetime.fromisoformat(doc["at"].replace("Z", "+00:00")).timestamp()
    lanes = doc.get("lanes")
    if not isinstance(lanes, list):
        raise ValueError("expected 'lanes': a list of {lane_id, vehicles, queue_veh, near_veh}")
    out = []
    for ln in lanes:
        if not isinstance(ln, dict) or not isinstance(ln.get("lane_id"), str):
            raise ValueError(f"lane entry without a string lane_id: {ln!r}")
        vals = []
        for k in ("vehicles", "queue_veh", "near_veh"):
            v = ln.get(k, 0)
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise ValueError(f"lane {ln['lane_id']}: {k} must be a number >= 0, got {v!r}")
            vals.append(int(v))
        out.append((ln["lane_id"], LaneState(vals[0], vals[1], vals[2], at)))
    return at, out


class PhaseActuator:
    """The phase sequencer of one intersection, fed by presence messages and the latest Webster plan."""

    def __init__(self, cfg: IntersectionConfig, clock: Callable[[], float] = time.time):
        if cfg.actuation is None:
            raise ValueError(f"intersection {cfg.id}: no actuation section")
        self.cfg = cfg
        self.act = cfg.actuation
        self.clock = clock
        self.lanes: dict[str, LaneState] = {}
        self.phase_lanes: list[list[str]] = []
        approach_lanes = {a.id: list(a.presence) for a in cfg.approaches}
        # seconds per vehicle of a discharging queue on each lane (its approach's saturation flow)
        self.headway_s = {ln: 3600.0 / a.saturation_flow_veh_h_lane for a in cfg.approaches for ln in a.presence}
        for p in cfg.phases:
            self.phase_lanes.append([ln for a in p.approaches for ln in approach_lanes[a]])
        for a in cfg.approaches:
            for ln in a.presence:
                self.lanes[ln] = LaneState()
        self.cameras = {ln.split(":", 1)[0] for ln in self.lanes}
        self.greens: list[float] | None = None  # Webster display greens of the current plan
        self.current = 0
        self.interval = Interval(cfg.phases[0].id, "green", clock(), "start")
        self.changes = 0
        self.presence_messages = 0
        self._pending = 0  # the phase that gets the green after the current intergreen
        self._pending_reason = ""

    # ---------------------------------------------------------------- inputs
    def on_presence(self, camera: str, doc: Mapping[str, Any], received_at: float | None = None) -> None:
        """A presence message of ``camera`` (the Ingestor's ``on_presence`` hook)."""
        if camera not in self.cameras:
            return
        _, lanes = parse_presence(doc, self.clock() if received_at is None else received_at)
        for lane_id, st in lanes:
            key = f"{camera}:{lane_id}"
            if key in self.lanes:
                self.lanes[key] = st
        self.presence_messages += 1

    def set_plan(self, plan: Plan) -> None:
        """Bounds from a new Webster plan (its display greens)."""
        self.greens = [p.green_s for p in plan.phases]

    # ---------------------------------------------------------------- state
    def stale(self, now: float) -> bool:
        return any(now - st.at > self.act.stale_after_s for st in self.lanes.values())

    def demand(self, i: int) -> float:
        """Vehicles waiting or approaching on the lanes of phase ``i`` (queued weigh queue_weight)."""
        return sum(self.lanes[ln].vehicles + (self.act.queue_weight - 1) * self.lanes[ln].queue_veh
                   for ln in self.phase_lanes[i])

    def queued(self, i: int) -> int:
        return sum(self.lanes[ln].queue_veh for ln in self.phase_lanes[i])

    def near(self, i: int) -> int:
        return sum(self.lanes[ln].near_veh for ln in self.phase_lanes[i])

    def clearance_s(self, i: int) -> float:
        """Green phase ``i`` needs to discharge its longest lane queue now, within its bounds."""
        lo, hi = self.bounds(i)
        need = self.cfg.startup_lost_s + max(
            (self.lanes[ln].queue_veh * self.headway_s[ln] for ln in self.phase_lanes[i]), default=0.0)
        return min(max(need, lo), hi)

    def bounds(self, i: int) -> tuple[float, float]:
        p = self.cfg.phases[i]
        lo = max(p.min_green_s, p.pedestrian_min_s)
        if self.greens is None:
            return lo, p.max_green_s
        return lo, min(max(self.greens[i] * self.act.max_green_factor, lo), p.max_green_s)

    def _next_phase(self, fixed: bool) -> int:
        n = len(self.cfg.phases)
        order = [(self.current + k) % n for k in range(1, n)]
        if fixed:
            return order[0]
        best = max(order, key=lambda i: (self.demand(i), -order.index(i)))
        return best if self.demand(best) > 0 else order[0]

    def tick(self, now: float | None = None) -> Interval | None:
        """Advance the sequencer to ``now``; the new interval when the signal changes, else None."""
        now = self.clock() if now is None else now
        iv = self.interval
        p = self.cfg.phases[self.current]
        elapsed = now - iv.since
        if iv.kind == "yellow":
            if elapsed >= p.yellow_s:
                return self._set(Interval(p.id, "all_red", now, iv.reason))
            return None
        if iv.kind == "all_red":
            if elapsed >= p.all_red_s:
                self.current = self._pending
                return self._set(Interval(self.cfg.phases[self.current].id, "green", now, self._pending_reason))
            return None
        lo, hi = self.bounds(self.current)
        if elapsed < lo:
            return None
        if self.stale(now):
            g = self.greens[self.current] if self.greens is not None else hi
            if elapsed >= g:
                return self._end_green(now, "fixed time (presence stale)", fixed=True)
            return None
        others = [i for i in range(len(self.cfg.phases)) if i != self.current]
        if self.act.rest_in_green and all(self.demand(i) <= 0 for i in others):
            return None
        if elapsed >= hi:
            return self._end_green(now, "max green")
        near = self.near(self.current)
        if near <= self.act.gap_out_veh:
            return self._end_green(now, "gap out")
        if self.queued(self.current) > 0 and (self.greens is None or elapsed < self.greens[self.current]):
            return None  # never cut a queue before Webster's green: short greens would waste the capacity
        k = self.act.queue_per_extending_veh
        if k is not None:
            waiting = max(self.queued(i) for i in others)
            if waiting > k * (near + self.queued(self.current)):
                return self._end_green(now, "queue elsewhere")
        z = self.act.extension_zone_s
        if z is not None:
            # extending 1 s lets ~near/z vehicles through, each of which would otherwise wait about a red
            # (R: both intergreens + the green the next phase needs to clear its queue); it costs 1 s to every
            # vehicle waiting or coming on red
            nxt = self._next_phase(False)
            q = self.cfg.phases[nxt]
            red = p.yellow_s + p.all_red_s + q.yellow_s + q.all_red_s + self.clearance_s(nxt)
            if near * red < z * self.demand(nxt):
                return self._end_green(now, "delay: more waiting than extending")
        return None

    def _end_green(self, now: float, why: str, fixed: bool = False) -> Interval:
        self._pending = self._next_phase(fixed)
        self._pending_reason = why
        return self._set(Interval(self.cfg.phases[self.current].id, "yellow", now, why))

    def _set(self, iv: Interval) -> Interval:
        self.interval = iv
        self.changes += 1
        return iv
