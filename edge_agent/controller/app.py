"""The controller process: store + ingest + MQTT + decision loop + HTTP API, wired together."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from edge_agent import __version__
from edge_agent.config import ConfigError
from edge_agent.controller.config import ControllerConfig
from edge_agent.controller.decide import Decider, Forecaster, silence_reason
from edge_agent.controller.ingest import Ingestor
from edge_agent.controller.mqtt_io import ControllerClient, Outbound, subscriptions
from edge_agent.controller.store import Store, open_store

log = logging.getLogger(__name__)


class Controller:
    """Everything one controller replica runs.

    Args:
        cfg: validated configuration.
        forecaster: optional flow forecaster for the decision round (issue 8).
        connect: start the MQTT client (False: ingest through :meth:`Ingestor.handle` only).
        clock: time source of the decisions (Unix s; a simulator passes its own).

    """

    def __init__(self, cfg: ControllerConfig, forecaster: Forecaster | None = None, connect: bool = True,
                 clock: Callable[[], float] = time.time):
        self.cfg = cfg
        url = None
        if cfg.store.postgres_url_env:
            url = os.environ.get(cfg.store.postgres_url_env)
            if not url:
                raise ConfigError("<environment>", [f"store.postgres_url_env: environment variable "
                                                    f"{cfg.store.postgres_url_env!r} is not set or empty"])
        self.store: Store = open_store(cfg.store.sqlite, url)
        self.backend = "postgres" if url else f"sqlite {cfg.store.sqlite}"
        self.mqtt: ControllerClient | None = None
        self.decider: Decider | None = None
        if forecaster is None and cfg.forecast.enabled:
            from edge_agent.controller.forecast_decisions import DecisionForecaster

            forecaster = DecisionForecaster(cfg.forecast)
        if cfg.control.decide:
            self.decider = Decider(cfg, self.store, self, forecaster, clock=clock)
        d = self.decider
        self.ingestor = Ingestor(self.store, cfg.mqtt.topic_prefix, cfg.store.batch_max,
                                 linger_s=cfg.store.linger_ms / 1000,
                                 on_presence=d.presence if d and d.actuators else None,
                                 on_choice=d.choice if d else None,
                                 on_meter=d.meter_reading if d else None)
        self.api = None
        if cfg.http.enabled:
            from edge_agent.controller.api import ApiServer

            self.api = ApiServer(cfg.http, self)
        self.stop = threading.Event()
        self._loop = threading.Thread(target=self._decide_loop, name="decide", daemon=True)
        self._phases = threading.Thread(target=self._phase_loop, name="phases", daemon=True)
        self._published: list[Outbound] = []
        if connect:
            self.mqtt = ControllerClient(cfg.mqtt, self.ingestor.handle, subscriptions(cfg.mqtt, cfg.control.decide))

    def publish(self, message: Outbound) -> None:
        """Decisions go out over MQTT (or are kept in memory when not connected, e.g. in tests)."""
        if self.mqtt is not None:
            self.mqtt.publish(message)
        else:
            self._published.append(message)

    def start(self) -> None:
        if self.api is not None:
            self.api.start()
        if self.decider is not None:
            self._loop.start()
            if self.decider.actuators:
                self._phases.start()
        log.info("controller %s %s: store %s, %d intersection(s), %d lighting segment(s), %d service area(s)",
                 __version__, self.cfg.mqtt.client_id, self.backend, len(self.cfg.intersections),
                 len(self.cfg.lighting.segments), len(self.cfg.services.areas))

    def _decide_loop(self) -> None:
        period = self.cfg.control.period_s
        next_at = time.monotonic()
        while not self.stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += period
            try:
                assert self.decider is not None
                self.ingestor.flush(timeout=period / 2)
                self.decider.run_round()
            except Exception:  # noqa: BLE001 - keep deciding next period; the log has the trace
                log.exception("decision round failed")

    def _phase_loop(self) -> None:
        """Presence-driven phase decisions every ``actuation.tick_s`` (the shortest of the intersections)."""
        assert self.decider is not None
        tick = min(a.act.tick_s for a in self.decider.actuators.values())
        while not self.stop.wait(tick):
            try:
                self.decider.tick_phases()
            except Exception:  # noqa: BLE001 - keep the signals running; the log has the trace
                log.exception("phase tick failed")

    def close(self) -> None:
        self.stop.set()
        if self._loop.is_alive():
            self._loop.join(10)
        if self._phases.is_alive():
            self._phases.join(10)
        if self.mqtt is not None:
            self.mqtt.stop_receiving()
        stored = self.ingestor.flush()  # stored, so acknowledged
        if self.mqtt is not None:
            self.mqtt.close(end_session=stored)
        self.ingestor.close()
        if self.api is not None:
            self.api.close()
        self.store.close()

    # ---- views for the API
    def status(self) -> dict[str, Any]:
        c = self.ingestor.snapshot()
        return {"version": __version__, "client_id": self.cfg.mqtt.client_id, "store": self.backend,
                "decides": self.decider is not None, "rounds": self.decider.rounds if self.decider else 0,
                "ingest": {**c, "refused": sum(v for k, v in c.items() if k.startswith("invalid."))},
                "mqtt_connected": bool(self.mqtt and self.mqtt.connected.is_set())}

    def nodes(self) -> list[dict[str, Any]]:
        now = time.time()
        return [{**n, "silent": silence_reason(n, now, self.cfg.health)} for n in self.store.nodes()]

    def flows(self, minutes: float, camera: str | None = None) -> list[dict[str, Any]]:
        """Per line and direction, [end_ts, veh/h] of each interval in the last ``minutes`` of data."""
        if minutes <= 0:
            raise ValueError(f"minutes must be > 0, got {minutes}")
        latest = self.store.query("SELECT MAX(end_ts) FROM line_counts")[0][0]
        if latest is None:
            return []
        series: dict[tuple[str, str, str], list[list[float]]] = {}
        for cam, line, d, _start, end, obs, veh in self.store.flow_history(latest - minutes * 60, camera):
            if obs > 0:
                series.setdefault((cam, line, d), []).append([end, round(veh * 3600.0 / obs, 1)])
        return [{"camera_id": k[0], "line_id": k[1], "direction": k[2], "points": v} for k, v in series.items()]

    def decisions(self, kind: str) -> dict[str, Any]:
        if self.decider is not None and self.decider.latest[kind]:
            return dict(self.decider.latest[kind])
        return self.store.latest_decisions(kind)
