"""Signal timing from measured flows: Webster's optimum cycle and green split.

Webster, F. V. (1958), *Traffic Signal Settings*, Road Research Technical
Paper No. 39, HMSO, London::

    y_i = max over the phase's lane groups of q / s          (flow ratio)
    Y   = sum_i y_i                                           (intersection flow ratio)
    L   = sum_i l_i,  l_i = startup_lost + yellow + all_red - extension
    C0  = (1.5 L + 5) / (1 - Y)                               (optimum cycle, s)
    g_i = (C - L) * y_i / Y                                   (effective green)
    G_i = g_i - yellow - all_red + l_i = g_i - extension + startup_lost (display green)

Guards:

* **Over-saturation.** When Y reaches ``max_degree_of_saturation`` the formula
  explodes (Y -> 1) or goes negative; Y is capped there for the cycle, the cycle
  becomes ``max_cycle_s`` and the plan is flagged ``oversaturated`` (greens
  then stay proportional to the real y_i, so every phase keeps its share).
* **Bounds.** The cycle is clamped to [min_cycle_s, max_cycle_s]; each display
  green to [max(min_green_s, pedestrian_min_s), max_green_s]; the cycle is then
  the sum of greens and intergreens (so clamping lengthens or shortens it).
* **No data.** A lane group without a fresh flow uses 0 and the plan lists it
  in ``missing``; with no flow at all the plan is the minimum-green cycle.

Forecast hook: :meth:`SignalPlanner.plan` takes the flows to use. The caller
passes measured flows, or a forecaster's (see ``controller.forecast``, issue 8)
for the validity window, through :class:`edge_agent.controller.decide.FlowSource`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_agent.controller.config import IntersectionConfig


def webster_cycle(lost_time_s: float, flow_ratio_sum: float) -> float:
    """Webster's optimum cycle C0 = (1.5 L + 5) / (1 - Y), in seconds.

    Raises:
        ValueError: when Y >= 1 (no finite cycle clears the demand) or inputs are negative.

    """
    if lost_time_s < 0 or flow_ratio_sum < 0:
        raise ValueError(f"lost time and Y must be >= 0, got L={lost_time_s}, Y={flow_ratio_sum}")
    if flow_ratio_sum >= 1:
        raise ValueError(f"Y = {flow_ratio_sum:.3f} >= 1: demand exceeds capacity, no finite optimum cycle")
    return (1.5 * lost_time_s + 5.0) / (1.0 - flow_ratio_sum)


def green_split(cycle_s: float, lost_time_s: float, ratios: list[float]) -> list[float]:
    """Effective greens g_i = (C - L) y_i / Y (equal split when Y is 0)."""
    usable = cycle_s - lost_time_s
    if usable <= 0:
        raise ValueError(f"cycle {cycle_s} s leaves no green after {lost_time_s} s lost time")
    total = sum(ratios)
    if total <= 0:
        return [usable / len(ratios)] * len(ratios)
    return [usable * y / total for y in ratios]


@dataclass
class PhaseTiming:
    id: str
    flow_ratio: float
    critical_approach: str | None
    effective_green_s: float
    green_s: float
    yellow_s: float
    all_red_s: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "green_s": round(self.green_s, 1), "yellow_s": self.yellow_s,
                "all_red_s": self.all_red_s, "effective_green_s": round(self.effective_green_s, 1),
                "flow_ratio": round(self.flow_ratio, 4), "critical_approach": self.critical_approach}


@dataclass
class Plan:
    intersection: str
    cycle_s: float
    webster_cycle_s: float | None
    lost_time_s: float
    flow_ratio_sum: float
    phases: list[PhaseTiming]
    flows_veh_h: dict[str, float]
    missing: list[str] = field(default_factory=list)
    oversaturated: bool = False
    notes: list[str] = field(default_factory=list)

    def degree_of_saturation(self) -> dict[str, float]:
        """X = q / (s g / C) per phase (critical lane group)."""
        return {p.id: (p.flow_ratio * self.cycle_s / p.effective_green_s if p.effective_green_s > 0 else 0.0)
                for p in self.phases}


class SignalPlanner:
    """Computes a plan for one intersection from per-approach flows (veh/h)."""

    def __init__(self, cfg: IntersectionConfig):
        self.cfg = cfg
        self._approach = {a.id: a for a in cfg.approaches}

    def phase_lost_time(self, phase_index: int) -> float:
        p = self.cfg.phases[phase_index]
        return max(0.0, self.cfg.startup_lost_s + p.yellow_s + p.all_red_s - self.cfg.extension_s)

    def plan(self, flows_veh_h: Mapping[str, float | None]) -> Plan:
        """A Webster plan for approach flows (approach id -> veh/h of the whole lane group, None = unknown)."""
        cfg = self.cfg
        missing = [a.id for a in cfg.approaches if flows_veh_h.get(a.id) is None]
        flows = {a.id: float(flows_veh_h.get(a.id) or 0.0) for a in cfg.approaches}
        ratios, critical = [], []
        for p in cfg.phases:
            best, arg = 0.0, None
            for aid in p.approaches:
                a = self._approach[aid]
                y = flows[aid] / (a.saturation_flow_veh_h_lane * a.lanes)
                if arg is None or y > best:
                    best, arg = y, aid
            ratios.append(best)
            critical.append(arg)
        lost = [self.phase_lost_time(i) for i in range(len(cfg.phases))]
        big_l = sum(lost)
        y_sum = sum(ratios)
        notes: list[str] = []
        oversat = y_sum >= cfg.max_degree_of_saturation
        c0: float | None
        if oversat:
            c0 = None
            cycle = cfg.max_cycle_s
            notes.append(f"Y = {y_sum:.3f} >= {cfg.max_degree_of_saturation}: over-saturated, cycle set to "
                         f"max_cycle_s and greens split by flow ratio")
        else:
            c0 = webster_cycle(big_l, y_sum)
            cycle = min(max(c0, cfg.min_cycle_s), cfg.max_cycle_s)
            if cycle != c0:
                notes.append(f"Webster cycle {c0:.1f} s clamped to [{cfg.min_cycle_s}, {cfg.max_cycle_s}]")
        cycle = max(cycle, big_l + len(cfg.phases))  # always some green
        eff = green_split(cycle, big_l, ratios)
        phases = []
        for i, p in enumerate(cfg.phases):
            g_display = eff[i] - p.yellow_s - p.all_red_s + lost[i]
            lo = max(p.min_green_s, p.pedestrian_min_s)
            clamped = min(max(g_display, lo), p.max_green_s)
            if clamped != g_display:
                notes.append(f"phase {p.id}: green {g_display:.1f} s clamped to [{lo}, {p.max_green_s}]")
            phases.append(PhaseTiming(p.id, ratios[i], critical[i], clamped + p.yellow_s + p.all_red_s - lost[i],
                                      clamped, p.yellow_s, p.all_red_s))
        final_cycle = sum(ph.green_s + ph.yellow_s + ph.all_red_s for ph in phases)
        return Plan(cfg.id, final_cycle, c0, big_l, y_sum, phases, flows, missing, oversat, notes)


def plan_payload(plan: Plan, valid_from: float, valid_until: float, flow_source: str,
                 flow_window: Mapping[str, Any]) -> dict[str, Any]:
    """The retained ``{prefix}/signals/{intersection}/plan`` document (schema controller-signal-plan.v1)."""
    from edge_agent.controller.timeutil import iso

    return {
        "schema": "edge-agent/signal-plan",
        "schema_version": 1,
        "intersection": plan.intersection,
        "valid_from": iso(valid_from),
        "valid_until": iso(valid_until),
        "method": "webster",
        "cycle_s": round(plan.cycle_s, 1),
        "webster_cycle_s": None if plan.webster_cycle_s is None else round(plan.webster_cycle_s, 1),
        "lost_time_s": round(plan.lost_time_s, 1),
        "flow_ratio_sum": round(plan.flow_ratio_sum, 4),
        "oversaturated": plan.oversaturated,
        "phases": [p.to_json() for p in plan.phases],
        "degree_of_saturation": {k: round(v, 3) for k, v in plan.degree_of_saturation().items()},
        "flows_used": {"source": flow_source, "veh_h": {k: round(v, 1) for k, v in plan.flows_veh_h.items()},
                       "missing": plan.missing, **flow_window},
        "notes": plan.notes,
    }
