"""Unusual flow: a running baseline per line, direction and time-of-day bin, and z-score alerts.

Each baseline is Welford's running mean and variance (Welford, B. P., 1962,
Technometrics 4(3):419-420) of the flow (veh/h) in that time-of-day bin. A
new interval is scored against the baseline *before* it joins it:
z = (x - mean) / max(std, min_std_veh_h). Alerts need ``min_samples``
earlier samples in that bin. Partial intervals shorter than half their length
are not scored (their flow is noisy) but still join the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge_agent.controller.config import AnomalyConfig
from edge_agent.controller.timeutil import hour_of_day


@dataclass
class Welford:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


@dataclass(frozen=True)
class FlowAnomaly:
    camera_id: str
    line_id: str
    direction: str
    bin_start_min: int
    flow_veh_h: float
    mean_veh_h: float
    std_veh_h: float
    z: float
    samples: int

    @property
    def subject(self) -> str:
        return f"{self.camera_id}/{self.line_id}/{self.direction}"

    def message(self) -> str:
        hh, mm = divmod(self.bin_start_min, 60)
        return (f"unusual flow on {self.subject}: {self.flow_veh_h:.0f} veh/h vs {self.mean_veh_h:.0f} +- "
                f"{self.std_veh_h:.0f} usual at {hh:02d}:{mm:02d} UTC (z = {self.z:+.1f}, {self.samples} samples)")


class AnomalyDetector:
    def __init__(self, cfg: AnomalyConfig):
        self.cfg = cfg
        self.baselines: dict[tuple[str, str, str, int], Welford] = {}

    def bin_of(self, ts: float) -> int:
        return int(hour_of_day(ts) * 60) // self.cfg.bin_minutes * self.cfg.bin_minutes

    def observe(self, camera_id: str, line_id: str, direction: str, start_ts: float, length_s: float,
                observed_s: float, vehicles: int) -> FlowAnomaly | None:
        """Score one interval against its baseline, then add it; returns an anomaly or None."""
        if observed_s <= 0:
            return None
        flow = vehicles * 3600.0 / observed_s
        b = self.bin_of(start_ts)
        w = self.baselines.setdefault((camera_id, line_id, direction, b), Welford())
        out = None
        if w.n >= self.cfg.min_samples and observed_s >= 0.5 * length_s:
            std = max(w.std, self.cfg.min_std_veh_h)
            z = (flow - w.mean) / std
            if abs(z) >= self.cfg.z_threshold:
                out = FlowAnomaly(camera_id, line_id, direction, b, flow, w.mean, w.std, z, w.n)
        w.add(flow)
        return out
