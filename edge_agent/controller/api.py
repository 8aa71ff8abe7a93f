"""HTTP API and dashboard, on the standard library's ``http.server`` (nothing is downloaded at run time).

    GET  /                               the dashboard (one self-contained page)
    GET  /api/status                     version, ingest counters, decision rounds
    GET  /api/nodes                      node health: status, last statistics, silent reason, sequence gaps
    GET  /api/flows?minutes=60&camera=   flows per camera/line/direction over time (veh/h per interval)
    GET  /api/plans | /api/lighting | /api/recommendations | /api/alerts?limit=100
    POST /api/lighting/{segment}/override {"level": 0.5, "minutes": 30}    operator
    POST /api/decide                                                        operator: run a decision round now

Access: on a loopback address without configured tokens, every request is
served. Once tokens are configured (mandatory off loopback) every /api request
needs ``Authorization: Bearer <token>``: a ``read`` token may GET, an
``operator`` token may also POST. Missing or unknown token: 401; read token on
an operator endpoint: 403. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from edge_agent.controller.config import HTTPConfig
from edge_agent.controller.dashboard import DASHBOARD_HTML

if TYPE_CHECKING:
    from edge_agent.controller.app import Controller

log = logging.getLogger(__name__)


class ApiServer:
    def __init__(self, cfg: HTTPConfig, controller: Controller):
        self.cfg = cfg
        self.controller = controller
        self.tokens: list[tuple[bytes, str]] = [(t.secret().encode(), t.scope) for t in cfg.tokens]
        handler = type("Handler", (_Handler,), {"api": self})
        self.httpd = ThreadingHTTPServer((cfg.host, cfg.port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http-api", daemon=True)

    def start(self) -> None:
        self.thread.start()
        log.info("HTTP API on http://%s:%d/ (%s)", self.cfg.host, self.port,
                 "tokens required" if self.tokens else "no token: loopback only")

    def close(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever, which never ran otherwise
            self.httpd.shutdown()
        self.httpd.server_close()

    def scope_of(self, header: str | None) -> str | None:
        """'operator', 'read', or None (no valid token). Without configured tokens: 'operator'."""
        if not self.tokens:
            return "operator"
        if not header or not header.startswith("Bearer "):
            return None
        given = header[len("Bearer "):].strip().encode()
        scope = None
        for secret, s in self.tokens:
            if hmac.compare_digest(given, secret):
                scope = s
        return scope


class _Handler(BaseHTTPRequestHandler):
    api: ApiServer
    server_version = "edge-agent-controller"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        self._send(status, json.dumps(doc, default=str).encode())

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message})

    def _authorized(self, need: str) -> bool:
        scope = self.api.scope_of(self.headers.get("Authorization"))
        if scope is None:
            self._error(HTTPStatus.UNAUTHORIZED, "missing or unknown token: send 'Authorization: Bearer <token>'")
            return False
        if need == "operator" and scope != "operator":
            self._error(HTTPStatus.FORBIDDEN, "this token has the read scope; this request needs operator")
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send(200, DASHBOARD_HTML.encode(), "text/html; charset=utf-8")
            return
        if not url.path.startswith("/api/"):
            self._error(HTTPStatus.NOT_FOUND, f"no page {url.path}")
            return
        if not self._authorized("read"):
            return
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        c = self.api.controller
        try:
            if url.path == "/api/status":
                self._json(200, c.status())
            elif url.path == "/api/nodes":
                self._json(200, c.nodes())
            elif url.path == "/api/flows":
                self._json(200, c.flows(float(q.get("minutes", 60)), q.get("camera")))
            elif url.path in ("/api/plans", "/api/lighting", "/api/recommendations", "/api/lighting/schedule"):
                kind = {"/api/plans": "plan", "/api/lighting": "lighting",
                        "/api/lighting/schedule": "lighting_schedule",
                        "/api/recommendations": "recommendations"}[url.path]
                self._json(200, c.decisions(kind))
            elif url.path == "/api/alerts":
                self._json(200, c.store.alerts(int(q.get("limit", 100))))
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no endpoint {url.path}")
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if not self._authorized("operator"):
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > 65536:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body over 64 KiB")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}")
            return
        c = self.api.controller
        parts = url.path.strip("/").split("/")
        try:
            if c.decider is None:
                self._error(HTTPStatus.CONFLICT, "this replica does not decide (control.decide is false)")
            elif parts[:2] == ["api", "lighting"] and len(parts) == 4 and parts[3] == "override":
                level = body.get("level")
                minutes = body.get("minutes", 60)
                if not isinstance(level, (int, float)) or not isinstance(minutes, (int, float)) or minutes <= 0:
                    raise ValueError(f"expected {{\"level\": 0..1, \"minutes\": > 0}}, got {body}")
                self._json(200, c.decider.override_lighting(parts[2], float(level), time.time() + minutes * 60))
            elif url.path == "/api/decide":
                self._json(200, c.decider.run_round())
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no endpoint {url.path}")
        except KeyError as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc.args[0]))
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
