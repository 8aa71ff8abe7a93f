"""Ingest -> store -> decide -> API, with a real SQLite file and a real HTTP server (no broker here)."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_agent.controller.app import Controller
from edge_agent.controller.store import SCHEMA_VERSION, SQLiteStore, open_store
from edge_agent.messages import load_schema
from test_controller_support import T0, config, stats_bytes


@pytest.fixture()
def ctrl(tmp_path: Path) -> Any:
    c = Controller(config(tmp_path), connect=False)
    c.start()
    yield c
    c.close()


def feed(c: Controller, intervals: int, n: int = 5, e: int = 3, s: int = 4) -> None:
    for k in range(intervals):
        start = T0 + timedelta(minutes=k)
        for cam, v in (("cam-n", n), ("cam-s", s), ("cam-e", e)):
            topic, payload = stats_bytes(cam, start, {"stop": (v, 1)})
            c.ingestor.handle(topic, payload)
    assert c.ingestor.flush()


def test_schema_is_created_once_in_wal_mode_and_migrations_are_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    s1 = open_store(db)
    s2 = open_store(db)  # a second start (or replica) finds the schema in place
    assert s1.schema_version() == s2.schema_version() == SCHEMA_VERSION
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "stats", "line_counts", "nodes", "events", "decisions", "alerts", "choices", "meter"} <= tables
    raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.commit()
    with pytest.raises(RuntimeError, match="schema version 99, newer than this controller's"):
        SQLiteStore(db).migrate()


def test_version_1_database_with_data_migrates_to_line_counts(tmp_path: Path) -> None:
    """A database written by schema 1 (four line_flows rows per message) keeps every count after the upgrade."""
    from edge_agent.controller.store import MIGRATIONS

    db = tmp_path / "v1.db"
    raw = sqlite3.connect(db)
    raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for stmt in MIGRATIONS[0]:
        raw.execute(stmt.format(pk="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL"))
    raw.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old = []  # (stats_id, camera, line, direction, start, end, observed, vehicles, total, received)
    for sid in (1, 2, 3):
        for line in ("stop", "exit"):
            for d, veh in (("in", 10 * sid + len(line)), ("out", sid)):
                old.append((sid, f"cam-{sid % 2}", line, d, 60.0 * sid, 60.0 * sid + 60, 58.0, veh, veh + 1,
                            1000.0 + sid))
    raw.executemany("INSERT INTO line_flows VALUES (?,?,?,?,?,?,?,?,?,?)", old)
    raw.commit()
    raw.close()

    store = open_store(db)
    assert store.schema_version() == SCHEMA_VERSION == 2
    tables = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "line_counts" in tables and "line_flows" not in tables
    assert store.count("line_counts") == 6
    got = sorted((s.stats_id, s.camera_id, s.line_id, s.direction, s.start_ts, s.end_ts, s.observed_s, s.vehicles,
                  s.received_at) for s in store.new_line_samples(0))
    assert got == sorted((sid, cam, line, d, st, en, obs, veh, rec)
                         for sid, cam, line, d, st, en, obs, veh, _tot, rec in old)
    totals = store.query("SELECT SUM(in_total), SUM(out_total) FROM line_counts")[0]
    assert totals == (sum(r[8] for r in old if r[3] == "in"), sum(r[8] for r in old if r[3] == "out"))
    # newest intervals first per line, both directions, only those received since the cut
    recent = store.line_samples(1000.5, per_line=1)  # cam-1 sent messages 1 and 3, cam-0 message 2
    assert sorted((s.camera_id, s.line_id, s.direction, s.stats_id) for s in recent) == sorted(
        (cam, line, d, sid) for cam, sid in (("cam-0", 2), ("cam-1", 3)) for line in ("exit", "stop")
        for d in ("in", "out"))
    assert {s.stats_id for s in store.line_samples(1002.5, per_line=5)} == {3}
    # a limit never splits a message: the rows of message 2 come whole on the next call
    first = store.new_line_samples(0, limit=3)
    assert {s.stats_id for s in first} == {1} and len(first) == 4
    assert {s.stats_id for s in store.new_line_samples(1, limit=3)} == {2}
    store.close()


def test_writers_on_one_sqlite_file_take_turns_on_a_lock_file(tmp_path: Path) -> None:
    """Two stores on one file (two replicas): a write transaction holds ``<db>.write-lock``, the other
    writer waits for it and then stores its row; nothing is lost or refused."""
    db = tmp_path / "c.db"
    a, b = SQLiteStore(db), SQLiteStore(db)
    a.migrate()
    b.migrate()
    inside, release, done = threading.Event(), threading.Event(), []

    def hold() -> None:
        with a.transaction() as cur:
            cur.execute("INSERT INTO alerts (created_at, kind, subject, message, details) "
                        "VALUES (1, 'a', 's', 'm', '{}')")
            inside.set()
            release.wait(10)
            done.append("a")  # still holding the lock: the other writer cannot have finished

    ta = threading.Thread(target=hold)
    ta.start()
    assert inside.wait(10)
    fd = os.open(f"{db}.write-lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # held for the whole transaction
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    tb = threading.Thread(target=lambda: (b.add_alert("b", "s", "m", {}, 2.0), done.append("b")))
    tb.start()
    tb.join(0.3)
    assert tb.is_alive() and done == []  # the second writer waits its turn
    release.set()
    ta.join(10)
    tb.join(10)
    assert done == ["a", "b"]
    assert a.query("SELECT kind FROM alerts ORDER BY created_at") == [("a",), ("b",)]
    a.close()
    b.close()


def test_replicas_starting_together_on_a_new_sqlite_file_both_start(tmp_path: Path) -> None:
    """Found by bench_controller --backlog: the second of two replicas started together died with
    'database is locked' switching the new file to WAL while the first created the schema."""
    code = ("import sys, time, pathlib\n"
            "from edge_agent.controller.store import open_store\n"
            "go = pathlib.Path(sys.argv[2])\n"
            "while not go.exists(): time.sleep(0.001)\n"
            "open_store(sys.argv[1]).close()\n")
    for k in range(6):
        db, go = tmp_path / f"c{k}.db", tmp_path / f"go{k}"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(go)], stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        time.sleep(0.5)  # all three waiting on the go file
        go.write_text("go")
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), errors
        assert SQLiteStore(db).schema_version() == SCHEMA_VERSION


def test_valid_stats_are_stored_once_bad_ones_counted_never_raised(ctrl: Controller) -> None:
    topic, payload = stats_bytes("cam-n", T0, {"stop": (7, 2), "exit": (0, 3)})
    ctrl.ingestor.handle(topic, payload)
    ctrl.ingestor.handle(topic, payload)  # QoS 1 redelivery
    doc = json.loads(payload)
    doc["agent_version"] = "other"  # same interval from a restarted agent: still the same record
    ctrl.ingestor.handle(topic, json.dumps(doc).encode())
    bad: list[tuple[str, bytes]] = [
        (topic, b"{not json"),
        (topic, b"[1, 2]"),
        (topic, json.dumps({**doc, "lines": "x"}).encode()),
        (topic, json.dumps({**doc, "schema_version": 7}).encode()),
        ("city/cam-x/stats", payload),  # camera_id differs from the topic
        ("city/cam-n/status", b"maybe"),
        ("city/a/b/c/d", b"{}"),
        (topic, b"\xff\xfe"),
    ]
    for t, p in bad:
        ctrl.ingestor.handle(t, p)
    assert ctrl.ingestor.flush()
    c = ctrl.ingestor.snapshot()
    assert c["stored"] == 1 and c["duplicate"] == 2
    assert {k: v for k, v in c.items() if k.startswith("invalid.")} == {
        "invalid.json": 2, "invalid.not_object": 1, "invalid.schema": 1, "invalid.schema_version": 1,
        "invalid.topic_mismatch": 1, "invalid.status": 1, "invalid.unknown_topic": 1}
    assert ctrl.store.count("stats") == 1
    rows = ctrl.store.query("SELECT line_id, in_vehicles, in_total, out_vehicles, out_total FROM line_counts "
                            "ORDER BY line_id")
    assert rows == [("exit", 0, 0, 3, 3), ("stop", 7, 7, 2, 2)]
    # the partial flag is part of the identity: a partial record of the same interval is another record
    _, partial = stats_bytes("cam-n", T0, {"stop": (1, 0)}, observed_s=20)
    ctrl.ingestor.handle(topic, partial)
    # with a message_id (a later schema), the id decides
    ctrl.ingestor.flush()
    assert ctrl.store.count("stats") == 2


def test_message_id_dedupes_when_present(tmp_path: Path) -> None:
    from edge_agent.controller.ingest import stats_row

    _, payload = stats_bytes("cam-n", T0, {"stop": (1, 0)})
    doc = json.loads(payload)
    row = stats_row(doc, "cam-n", payload.decode(), 0.0)
    assert row.dedupe_key == "cam-n|2024-05-06T08:00:00Z|2024-05-06T08:01:00Z|0"
    assert row.seq is None and row.message_id is None


def test_decision_round_publishes_valid_plan_lighting_and_recommendations(ctrl: Controller) -> None:
    feed(ctrl, 3, n=5, e=3, s=4)  # 300, 180, 240 veh/h in
    ctrl.decider.run_round()
    out = {m.topic: (json.loads(m.payload), m.retain) for m in ctrl._published}
    plan, retained = out["city/signals/main-x/plan"]
    assert retained
    jsonschema.validate(plan, load_schema("controller-signal-plan.v1"))
    assert plan["flows_used"]["veh_h"] == {"north": 300.0, "south": 240.0, "east": 180.0}
    assert plan["flows_used"]["source"] == "measured" and plan["flows_used"]["intervals_per_line"] == 3
    # Y = 300/1800 + 180/1800 = 0.2667; L = 2 * (2 + 3 + 2 - 2) = 10; C0 = 20 / 0.7333 = 27.3 -> min 30
    assert plan["webster_cycle_s"] == pytest.approx(27.3, abs=0.05) and plan["cycle_s"] == pytest.approx(30, abs=0.1)
    light, retained = out["city/lighting/main-street/set"]
    jsonschema.validate(light, load_schema("controller-lighting-set.v1"))
    assert retained and light["flow_veh_h"] == 360.0 and light["level"] == 0.6  # 300 in + 60 out
    recs, _ = out["city/services/centre/recommendations"]
    jsonschema.validate(recs, load_schema("controller-service-recommendations.v1"))
    assert [o["rank"] for o in recs["options"]] == [1, 2]
    assert sum(o["probability"] for o in recs["options"]) == pytest.approx(1, abs=1e-3)
    garage = next(o for o in recs["options"] if o["id"] == "garage")
    assert garage["occupancy"] == pytest.approx((9 - 3) / 50)  # 3 intervals x (3 in - 1 out) since start


def test_silent_camera_and_offline_status_raise_alerts(tmp_path: Path) -> None:
    now = [time.time()]
    c = Controller(config(tmp_path), connect=False)
    c.decider.clock = lambda: now[0]
    try:
        feed(c, 1)
        c.ingestor.handle("city/cam-s/status", b"offline")
        c.decider.run_round()
        kinds = {(a["kind"], a["subject"]) for a in c.store.alerts()}
        assert kinds == {("camera_silent", "cam-s")}
        now[0] += 3 * 60 + 1  # three 60 s intervals without statistics
        c.decider.run_round()
        silent = {a["subject"] for a in c.store.alerts() if a["kind"] == "camera_silent"}
        assert silent == {"cam-s", "cam-n", "cam-e"}
        assert "no statistics for 181 s (limit 180 s)" in " ".join(a["message"] for a in c.store.alerts())
        c.decider.run_round()
        assert len(c.store.alerts()) == 3  # one alert per outage, not per round
    finally:
        c.close()


def test_unusual_flow_alert_from_time_of_day_baseline(ctrl: Controller) -> None:
    for day in range(6):
        t = T0 + timedelta(days=day)
        ctrl.ingestor.handle(*stats_bytes("cam-e", t, {"stop": (10 + day % 2, 0)}))
    ctrl.ingestor.handle(*stats_bytes("cam-e", T0 + timedelta(days=6), {"stop": (60, 0)}))
    ctrl.ingestor.flush()
    ctrl.decider.run_round()
    unusual = [a for a in ctrl.store.alerts() if a["kind"] == "unusual_flow"]
    assert [a["subject"] for a in unusual] == ["cam-e/stop/in"]
    assert unusual[0]["details"]["flow_veh_h"] == 3600.0 and unusual[0]["details"]["z"] > 3


def test_observed_choices_refit_the_logit(tmp_path: Path) -> None:
    c = Controller(config(tmp_path, services={"areas": [{**json.loads(json.dumps(
        __import__("test_controller_support").CONFIG["services"]["areas"][0])), "fit_min_choices": 10}]}),
        connect=False)
    try:
        feed(c, 1)
        for k in range(12):
            c.ingestor.handle("city/services/centre/choice", json.dumps({"option": "garage" if k % 3 else
                                                                         "p-and-r"}).encode())
        c.ingestor.handle("city/services/centre/choice", b'{"option": "moon"}')
        assert c.ingestor.snapshot()["invalid.choice"] == 1
        c.decider.run_round()
        rec = c.decider.latest["recommendations"]["centre"]
        assert rec["model"]["source"] == "fitted" and rec["model"]["observations"] == 12
    finally:
        c.close()


# ------------------------------------------------------------------ HTTP API


def get(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read()) if "json" in r.headers["Content-Type"] else r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_serves_views_and_operator_commands_on_localhost(ctrl: Controller) -> None:
    feed(ctrl, 3)
    ctrl.decider.run_round()
    base = f"http://127.0.0.1:{ctrl.api.port}"
    assert get(base + "/api/plans")[1]["main-x"]["intersection"] == "main-x"
    assert get(base + "/api/lighting")[1]["main-street"]["level"] == 0.6
    status, nodes = get(base + "/api/nodes")
    assert status == 200 and [n["camera_id"] for n in nodes] == ["cam-e", "cam-n", "cam-s"]
    flows = get(base + "/api/flows?minutes=10&camera=cam-n")[1]
    assert {(f["line_id"], f["direction"]) for f in flows} == {("stop", "in"), ("stop", "out")}
    assert [p[1] for p in flows[0]["points"]] in ([300.0] * 3, [60.0] * 3)
    code, page = get(base + "/")
    assert code == 200 and "function chart" in page and "http" not in page.split("<script>")[0]  # no CDN
    code, doc = get(base + "/api/lighting/main-street/override", body={"level": 1.0, "minutes": 5})
    assert code == 200 and doc["level"] == 1.0 and doc["reason"] == "operator override"
    assert get(base + "/api/lighting/nowhere/override", body={"level": 1})[0] == 404
    assert get(base + "/api/lighting/main-street/override", body={"level": "high"})[0] == 400
    assert get(base + "/api/flows?minutes=-1")[0] == 400


def test_api_refuses_missing_wrong_and_underprivileged_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("READ_TOKEN", "r-secret")
    (tmp_path / "op.token").write_text("op-secret\n")
    cfg = config(tmp_path, http={"host": "0.0.0.0", "port": 0, "tokens": [
        {"name": "viewer", "scope": "read", "token_env": "READ_TOKEN"},
        {"name": "ops", "scope": "operator", "token_file": "op.token"}]})
    c = Controller(cfg, connect=False)
    c.start()
    try:
        base = f"http://127.0.0.1:{c.api.port}"
        assert get(base + "/api/status")[0] == 401
        assert get(base + "/api/status", "wrong")[0] == 401
        assert get(base + "/api/status", "r-secret")[0] == 200
        assert get(base + "/api/status", "op-secret")[0] == 200
        code, err = get(base + "/api/decide", "r-secret", body={})
        assert code == 403 and "needs operator" in err["error"]
        assert get(base + "/api/decide", None, body={})[0] == 401
        assert get(base + "/api/decide", "op-secret", body={})[0] == 200
    finally:
        c.close()
