"""Health of a camera node: Prometheus metrics, ``/healthz``, and the MQTT health record.

``/metrics`` serves the Prometheus text format (``prometheus_client``);
``/healthz`` answers 200 with a JSON summary when every camera is streaming
(or has finished its file) and 503 otherwise, for load balancers and systemd
watchdogs. The same summary, per camera, is published retained on
``{prefix}/{camera}/health`` every ``health.interval_s``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

HEALTH_SCHEMA = "edge-agent/health"
OK_STATES = {"streaming", "ended"}


class Metrics:
    """The node's Prometheus metrics, labelled by camera."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("edge_agent_frames_processed", "Frames that went through detection",
                              ["camera"], registry=r)
        self.dropped = Counter("edge_agent_frames_dropped", "Frames read but not processed", ["camera"], registry=r)
        self.inference = Histogram("edge_agent_inference_seconds", "Detector time per frame", ["camera"],
                                   buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0), registry=r)
        self.crossings = Counter("edge_agent_crossings", "Line crossings", ["camera", "line", "direction", "cls"],
                                 registry=r)
        self.reconnects = Counter("edge_agent_source_reconnects", "Times a live source was reopened",
                                  ["camera"], registry=r)
        self.spool_depth = Gauge("edge_agent_spool_depth", "Messages waiting for a broker acknowledgement",
                                 ["camera"], registry=r)
        self.spool_dropped = Gauge("edge_agent_spool_dropped", "Messages dropped by the spool's size/age bound",
                                   ["camera"], registry=r)
        self.connected = Gauge("edge_agent_mqtt_connected", "1 while connected to the broker", ["camera"],
                               registry=r)
        self.streaming = Gauge("edge_agent_source_up", "1 while the source delivers frames", ["camera"], registry=r)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


class HealthServer:
    """``/metrics`` and ``/healthz`` over HTTP, in a daemon thread.

    Args:
        host, port: where to listen (port 0 picks a free one; see ``.port``).
        metrics: what ``/metrics`` serves.
        summary: returns ``{camera: health record}`` for ``/healthz``.
    """

    def __init__(self, host: str, port: int, metrics: Metrics,
                 summary: Callable[[], Mapping[str, Mapping[str, Any]]]):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/metrics":
                    self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    cams = summary()
                    ok = bool(cams) and all(c.get("state") in OK_STATES for c in cams.values())
                    body = json.dumps({"ok": ok, "cameras": cams}, separators=(",", ":")).encode()
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("http %s", fmt % args)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="health-http", daemon=True)
        self.thread.start()
        self.url = f"http://{host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
