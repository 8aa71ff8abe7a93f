"""Adaptive street lighting: a dimming level per segment from measured traffic, and its energy.

Dimming: the segment's flow (veh/h, summed over its lines) selects the highest
step whose ``min_flow_veh_h`` it reaches. Going *up* is immediate (safety
first); going *down* one step needs the flow to fall below the current step's
threshold minus ``hysteresis_veh_h``, so that a flow hovering at a threshold
does not make the lamps flicker between levels. The level never goes below
``min_level``. Without a fresh flow the segment goes to full power (fail safe).

Energy: :class:`EnergyModel` fits, by ordinary least squares on sufficient
statistics (X'X, X'y, updated per observation, solved on demand), ::

    kWh per hour = b0 + b1 * level + b2 * flow/1000 + b3 * sin(2 pi h/24) + b4 * cos(2 pi h/24)

from metered readings (``{prefix}/lighting/{segment}/meter``). Until it has
enough readings it uses the nameplate model kWh/h = rated_power_w * level / 1000.
Energy saved against always-full = model(level = 1) - model(level actually used),
accumulated over the time each level was in force.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge_agent.controller.config import SegmentConfig

N_FEATURES = 5


def features(level: float, flow_veh_h: float, hour: float) -> np.ndarray:
    a = 2 * math.pi * hour / 24
    return np.array([1.0, level, flow_veh_h / 1000.0, math.sin(a), math.cos(a)])


class EnergyModel:
    """Online ordinary least squares of consumption (kWh per hour) on level, traffic and hour."""

    def __init__(self, rated_power_w: float, min_observations: int = 2 * N_FEATURES):
        self.rated_power_w = rated_power_w
        self.min_observations = min_observations
        self.xtx = np.zeros((N_FEATURES, N_FEATURES))
        self.xty = np.zeros(N_FEATURES)
        self.n = 0
        self._coef: np.ndarray | None = None

    def observe(self, level: float, flow_veh_h: float, hour: float, kwh_per_h: float) -> None:
        x = features(level, flow_veh_h, hour)
        self.xtx += np.outer(x, x)
        self.xty += x * kwh_per_h
        self.n += 1
        self._coef = None

    @property
    def fitted(self) -> bool:
        return self.n >= self.min_observations and np.linalg.matrix_rank(self.xtx) == N_FEATURES

    @property
    def coefficients(self) -> np.ndarray | None:
        """(5,) b0..b4, or None before the fit is identifiable."""
        if not self.fitted:
            return None
        if self._coef is None:
            self._coef = np.linalg.lstsq(self.xtx, self.xty, rcond=None)[0]
        return self._coef

    def kwh_per_h(self, level: float, flow_veh_h: float, hour: float) -> float:
        coef = self.coefficients
        if coef is None:
            return self.rated_power_w * level / 1000.0
        return max(0.0, float(features(level, flow_veh_h, hour) @ coef))


@dataclass
class SegmentState:
    level: float | None = None
    since: float | None = None
    flow_veh_h: float | None = None
    energy_kwh: float = 0.0
    baseline_kwh: float = 0.0
    changes: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)  # (ts, level), bounded


class DimmingController:
    """Chooses the level of one segment and accounts its energy."""

    HISTORY = 500

    def __init__(self, cfg: SegmentConfig):
        self.cfg = cfg
        self.state = SegmentState()
        self.model = EnergyModel(cfg.rated_power_w)

    def _step_index(self, level: float | None) -> int | None:
        for i, s in enumerate(self.cfg.steps):
            if level is not None and abs(s.level - level) < 1e-9:
                return i
        return None

    def choose(self, flow_veh_h: float | None) -> float:
        """The level for this flow, given the current level (hysteresis)."""
        steps = self.cfg.steps
        if flow_veh_h is None:
            return 1.0
        target = max(i for i, s in enumerate(steps) if flow_veh_h >= s.min_flow_veh_h)
        cur = self._step_index(self.state.level)
        if cur is not None and target < cur:
            # go down only as far as the hysteresis allows, one threshold at a time
            while cur > target and flow_veh_h < steps[cur].min_flow_veh_h - self.cfg.hysteresis_veh_h:
                cur -= 1
            target = cur
        return max(steps[target].level, self.cfg.min_level)

    def update(self, flow_veh_h: float | None, now: float, hour: float) -> bool:
        """Account the energy since the last update, then set the new level; True when the level changed."""
        st = self.state
        if st.level is not None and st.since is not None and now > st.since:
            hours = (now - st.since) / 3600
            flow = st.flow_veh_h or 0.0
            st.energy_kwh += self.model.kwh_per_h(st.level, flow, hour) * hours
            st.baseline_kwh += self.model.kwh_per_h(1.0, flow, hour) * hours
        level = self.choose(flow_veh_h)
        changed = level != st.level
        if changed:
            st.changes += 1
            st.history.append((now, level))
            del st.history[:-self.HISTORY]
        st.level, st.since, st.flow_veh_h = level, now, flow_veh_h
        return changed

    @property
    def saved_kwh(self) -> float:
        return self.state.baseline_kwh - self.state.energy_kwh
