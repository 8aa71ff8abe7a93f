"""Where the controller keeps what it ingests and decides: SQLite (WAL) or PostgreSQL.

One schema for both engines, created and migrated on start (``meta`` holds the
schema version; each migration runs once, in a transaction). Times are Unix
seconds (float) so that both engines compare them the same way.

Threads: one *writer* (the ingest loop) and any number of readers; every
thread gets its own connection (:meth:`Store.conn`). SQLite in WAL mode lets
readers run while the writer commits.

Exactly-once storage: ``stats.dedupe_key`` is UNIQUE and rows are inserted
with ``ON CONFLICT DO NOTHING``, so a message redelivered by the broker, or
received by two replicas, is stored once.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

try:
    import fcntl
except ImportError:  # not on POSIX: SQLite's own busy wait only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# Each migration: list of statements. {pk}: auto-increment primary key, {real}: double.
MIGRATIONS: list[list[str]] = [
    [  # 1: first schema
        """CREATE TABLE stats (
            id {pk}, dedupe_key TEXT NOT NULL UNIQUE, message_id TEXT, camera_id TEXT NOT NULL,
            node_id TEXT, seq BIGINT, start_ts {real} NOT NULL, end_ts {real} NOT NULL, partial INTEGER NOT NULL,
            length_s {real} NOT NULL, observed_s {real} NOT NULL, received_at {real} NOT NULL,
            stored_at {real} NOT NULL, payload TEXT NOT NULL)""",
        "CREATE INDEX stats_camera_end ON stats (camera_id, end_ts)",
        """CREATE TABLE line_flows (
            stats_id BIGINT NOT NULL, camera_id TEXT NOT NULL, line_id TEXT NOT NULL, direction TEXT NOT NULL,
            start_ts {real} NOT NULL, end_ts {real} NOT NULL, observed_s {real} NOT NULL, vehicles INTEGER NOT NULL,
            total INTEGER NOT NULL, received_at {real} NOT NULL, PRIMARY KEY (stats_id, line_id, direction))""",
        "CREATE INDEX line_flows_line ON line_flows (camera_id, line_id, direction, end_ts)",
        "CREATE INDEX line_flows_received ON line_flows (received_at)",
        """CREATE TABLE nodes (
            camera_id TEXT PRIMARY KEY, node_id TEXT, status TEXT, status_at {real}, last_stats_at {real},
            last_interval_end {real}, interval_s {real}, last_seq BIGINT, seq_gaps BIGINT NOT NULL DEFAULT 0,
            messages BIGINT NOT NULL DEFAULT 0)""",
        """CREATE TABLE events (
            id {pk}, dedupe_key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, camera_id TEXT NOT NULL,
            received_at {real} NOT NULL, payload TEXT NOT NULL)""",
        """CREATE TABLE decisions (
            id {pk}, kind TEXT NOT NULL, subject TEXT NOT NULL, created_at {real} NOT NULL, payload TEXT NOT NULL)""",
        "CREATE INDEX decisions_subject ON decisions (kind, subject, created_at)",
        """CREATE TABLE alerts (
            id {pk}, created_at {real} NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL, message TEXT NOT NULL,
            details TEXT NOT NULL)""",
        """CREATE TABLE choices (
            id {pk}, area TEXT NOT NULL, option_id TEXT NOT NULL, received_at {real} NOT NULL,
            attributes TEXT NOT NULL)""",
        """CREATE TABLE meter (
            segment TEXT NOT NULL, start_ts {real} NOT NULL, end_ts {real} NOT NULL, kwh {real} NOT NULL,
            level {real} NOT NULL, flow_veh_h {real} NOT NULL, received_at {real} NOT NULL,
            PRIMARY KEY (segment, start_ts))""",
    ],
    [  # 2: one row per line and interval with both directions, half the rows and index entries of line_flows
        # (the writer's largest cost: scripts/bench_controller.py, 18 -> 8 us of SQLite per message)
        """CREATE TABLE line_counts (
            stats_id BIGINT NOT NULL, camera_id TEXT NOT NULL, line_id TEXT NOT NULL, start_ts {real} NOT NULL,
            end_ts {real} NOT NULL, observed_s {real} NOT NULL, in_vehicles INTEGER NOT NULL,
            in_total INTEGER NOT NULL, out_vehicles INTEGER NOT NULL, out_total INTEGER NOT NULL,
            received_at {real} NOT NULL, PRIMARY KEY (stats_id, line_id))""",
        """INSERT INTO line_counts (stats_id, camera_id, line_id, start_ts, end_ts, observed_s, in_vehicles, in_total,
                                    out_vehicles, out_total, received_at)
            SELECT stats_id, MIN(camera_id), line_id, MIN(start_ts), MIN(end_ts), MIN(observed_s),
                   SUM(CASE WHEN direction = 'in' THEN vehicles ELSE 0 END),
                   SUM(CASE WHEN direction = 'in' THEN total ELSE 0 END),
                   SUM(CASE WHEN direction = 'out' THEN vehicles ELSE 0 END),
                   SUM(CASE WHEN direction = 'out' THEN total ELSE 0 END), MIN(received_at)
            FROM line_flows GROUP BY stats_id, line_id""",
        "DROP TABLE line_flows",
        "CREATE INDEX line_counts_line ON line_counts (camera_id, line_id, end_ts)",
        "CREATE INDEX line_counts_received ON line_counts (received_at)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


class StatsRow(NamedTuple):
    """One validated statistics message, ready to store.

    A NamedTuple, not a frozen dataclass: one is made per message in the MQTT thread, and a
    frozen dataclass's ``__init__`` took 1.3 us against 0.26 us.
    """

    dedupe_key: str
    message_id: str | None
    camera_id: str
    node_id: str
    seq: int | None
    start_ts: float
    end_ts: float
    partial: bool
    length_s: float
    observed_s: float
    received_at: float
    payload: str
    lines: tuple[tuple[str, int, int, int, int], ...]  # (line_id, in vehicles, in total, out vehicles, out total)


@dataclass(frozen=True, slots=True)
class LineSample:
    camera_id: str
    line_id: str
    direction: str
    start_ts: float
    end_ts: float
    observed_s: float
    vehicles: int
    received_at: float
    stats_id: int


class Store:
    """Common SQL over a DB-API connection factory; see :class:`SQLiteStore` and :class:`PostgresStore`."""

    dialect = "sqlite"
    placeholder = "?"

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()

    # -- connections
    def _connect(self) -> Any:
        raise NotImplementedError

    def conn(self) -> Any:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._connect()
            self._local.conn = c
            with self._all_lock:
                self._all.append(c)
        return c

    def close(self) -> None:
        with self._all_lock:
            for c in self._all:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing from another thread may fail; nothing to do
                    pass
            self._all.clear()
        self._local = threading.local()

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        c = self.conn()
        with self._writing():
            cur = c.cursor()
            try:
                yield cur
                c.commit()
            except BaseException:
                c.rollback()
                raise
            finally:
                cur.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Held around every write transaction (see :class:`SQLiteStore`)."""
        yield

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        c = self.conn()
        cur = c.cursor()
        try:
            cur.execute(self._sql(sql), tuple(params))
            rows = cur.fetchall()
        finally:
            cur.close()
        c.commit()  # end the read transaction so that later reads see new data
        return [tuple(r) for r in rows]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cur:
            cur.execute(self._sql(sql), tuple(params))

    # -- schema
    def _ddl(self, stmt: str) -> str:
        raise NotImplementedError

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the version the database is at."""
        with self.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for _ in range(3):  # two replicas may start together: the loser of a race retries
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"the database is at schema version {version}, newer than this controller's "
                                   f"{SCHEMA_VERSION}; upgrade the controller")
            if version == SCHEMA_VERSION:
                return version
            try:
                with self.transaction() as cur:
                    self._lock_meta(cur)
                    cur.execute(self._sql("SELECT value FROM meta WHERE key = ?"), ("schema_version",))
                    row = cur.fetchone()
                    current = int(row[0]) if row else 0
                    for v in range(current, SCHEMA_VERSION):
                        for stmt in MIGRATIONS[v]:
                            cur.execute(self._ddl(stmt))
                        log.info("database schema migrated to version %d", v + 1)
                    cur.execute(self._sql("DELETE FROM meta WHERE key = ?"), ("schema_version",))
                    cur.execute(self._sql("INSERT INTO meta (key, value) VALUES (?, ?)"),
                                ("schema_version", str(SCHEMA_VERSION)))
            except Exception as exc:  # noqa: BLE001 - a concurrent migration; look again
                log.warning("schema migration raced with another process (%s); retrying", exc)
                time.sleep(0.2)
        return self.schema_version()

    def _lock_meta(self, cur: Any) -> None:
        pass

    def schema_version(self) -> int:
        rows = self.query("SELECT value FROM meta WHERE key = ?", ("schema_version",))
        return int(rows[0][0]) if rows else 0

    # -- ingest (writer thread)
    def write_stats(self, rows: Iterable[StatsRow]) -> tuple[list[StatsRow], list[StatsRow]]:
        """Store a batch in one transaction; returns (stored, duplicates)."""
        stored, dups = [], []
        now = time.time()
        ins = self._sql("INSERT INTO stats (dedupe_key, message_id, camera_id, node_id, seq, start_ts, end_ts, "
                        "partial, length_s, observed_s, received_at, stored_at, payload) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id")
        ins_line = self._sql("INSERT INTO line_counts (stats_id, camera_id, line_id, start_ts, end_ts, observed_s, "
                             "in_vehicles, in_total, out_vehicles, out_total, received_at) "
                             "VALUES (?,?,?,?,?,?,?,?,?,?,?)")
        with self.transaction() as cur:
            lines: list[tuple[Any, ...]] = []
            for r in rows:
                cur.execute(ins, (r.dedupe_key, r.message_id, r.camera_id, r.node_id, r.seq, r.start_ts, r.end_ts,
                                  int(r.partial), r.length_s, r.observed_s, r.received_at, now, r.payload))
                got = cur.fetchone()
                if got is None:
                    dups.append(r)
                    continue
                stored.append(r)
                sid = got[0]
                lines.extend((sid, r.camera_id, lid, r.start_ts, r.end_ts, r.observed_s, iv, it, ov, ot,
                              r.received_at) for lid, iv, it, ov, ot in r.lines)
            if lines:
                cur.executemany(ins_line, lines)
            self._update_nodes(cur, stored)
        return stored, dups

    def _update_nodes(self, cur: Any, rows: list[StatsRow]) -> None:
        latest: dict[str, StatsRow] = {}
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.camera_id] = counts.get(r.camera_id, 0) + 1
            if r.camera_id not in latest or r.received_at >= latest[r.camera_id].received_at:
                latest[r.camera_id] = r
        for cam, r in latest.items():
            cur.execute(self._sql(
                "INSERT INTO nodes (camera_id, node_id, last_stats_at, last_interval_end, interval_s, messages) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (camera_id) DO UPDATE SET node_id = excluded.node_id, "
                "last_stats_at = excluded.last_stats_at, interval_s = excluded.interval_s, "
                "last_interval_end = CASE WHEN nodes.last_interval_end IS NULL OR "
                "excluded.last_interval_end > nodes.last_interval_end THEN excluded.last_interval_end "
                "ELSE nodes.last_interval_end END, messages = nodes.messages + excluded.messages"),
                (cam, r.node_id, r.received_at, r.end_ts, r.length_s, counts[cam]))

    def record_seq(self, camera_id: str, seq: int) -> int:
        """Remember a camera's sequence number; returns how many numbers were skipped since the last one."""
        rows = self.query("SELECT last_seq FROM nodes WHERE camera_id = ?", (camera_id,))
        last = rows[0][0] if rows else None
        gap = max(0, seq - last - 1) if last is not None and seq > last else 0
        with self.transaction() as cur:
            cur.execute(self._sql("INSERT INTO nodes (camera_id, last_seq, seq_gaps) VALUES (?,?,?) "
                                  "ON CONFLICT (camera_id) DO UPDATE SET last_seq = CASE WHEN nodes.last_seq IS NULL "
                                  "OR excluded.last_seq > nodes.last_seq THEN excluded.last_seq ELSE nodes.last_seq "
                                  "END, seq_gaps = nodes.seq_gaps + excluded.seq_gaps"), (camera_id, seq, gap))
        return gap

    def record_seqs(self, rows: Sequence[StatsRow]) -> list[tuple[StatsRow, int]]:
        """:meth:`record_seq` for a batch, in one transaction: one read and one upsert per camera.

        Returns (row, skipped numbers before it) for each row whose gap is not 0, the
        numbers applied in the rows' order exactly as single calls would.
        """
        by_cam: dict[str, list[StatsRow]] = {}
        for r in rows:
            if r.seq is not None:
                by_cam.setdefault(r.camera_id, []).append(r)
        if not by_cam:
            return []
        gaps: list[tuple[StatsRow, int]] = []
        with self.transaction() as cur:
            for cam, rs in by_cam.items():
                cur.execute(self._sql("SELECT last_seq FROM nodes WHERE camera_id = ?"), (cam,))
                got = cur.fetchone()
                last = got[0] if got else None
                total = 0
                for r in rs:
                    seq = r.seq
                    assert seq is not None
                    gap = max(0, seq - last - 1) if last is not None and seq > last else 0
                    if gap:
                        gaps.append((r, gap))
                        total += gap
                    if last is None or seq > last:
                        last = seq
                cur.execute(self._sql("INSERT INTO nodes (camera_id, last_seq, seq_gaps) VALUES (?,?,?) "
                                      "ON CONFLICT (camera_id) DO UPDATE SET last_seq = CASE WHEN nodes.last_seq "
                                      "IS NULL OR excluded.last_seq > nodes.last_seq THEN excluded.last_seq ELSE "
                                      "nodes.last_seq END, seq_gaps = nodes.seq_gaps + excluded.seq_gaps"),
                            (cam, last, total))
        return gaps

    def set_status(self, camera_id: str, status: str, at: float) -> None:
        self.execute("INSERT INTO nodes (camera_id, status, status_at) VALUES (?,?,?) ON CONFLICT (camera_id) "
                     "DO UPDATE SET status = excluded.status, status_at = excluded.status_at",
                     (camera_id, status, at))

    def write_event(self, dedupe_key: str, kind: str, camera_id: str, received_at: float, payload: str) -> bool:
        with self.transaction() as cur:
            cur.execute(self._sql("INSERT INTO events (dedupe_key, kind, camera_id, received_at, payload) "
                                  "VALUES (?,?,?,?,?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"),
                        (dedupe_key, kind, camera_id, received_at, payload))
            return cur.fetchone() is not None

    # -- decisions and reads
    _SAMPLE_COLS = ("camera_id, line_id, start_ts, end_ts, observed_s, in_vehicles, out_vehicles, received_at, "
                    "stats_id")

    @staticmethod
    def _samples(rows: Iterable[tuple[Any, ...]]) -> list[LineSample]:
        """Rows of ``_SAMPLE_COLS`` -> one sample per direction ("in" first)."""
        return [LineSample(cam, line, d, start, end, obs, veh, rec, sid)
                for cam, line, start, end, obs, vin, vout, rec, sid in rows
                for d, veh in (("in", vin), ("out", vout))]

    def line_samples(self, since_received: float, per_line: int) -> list[LineSample]:
        """The last ``per_line`` intervals of every line and direction received after ``since_received``."""
        rows = self.query(f"SELECT {self._SAMPLE_COLS} FROM line_counts WHERE received_at >= ? "
                          "ORDER BY camera_id, line_id, end_ts DESC", (since_received,))
        out: list[tuple[Any, ...]] = []
        seen: dict[tuple[str, str], int] = {}
        for r in rows:
            k = (r[0], r[1])
            if seen.get(k, 0) < per_line:
                seen[k] = seen.get(k, 0) + 1
                out.append(r)
        return self._samples(out)

    def new_line_samples(self, after_stats_id: int, limit: int = 100000) -> list[LineSample]:
        """Samples of the statistics stored after ``after_stats_id``, in storage order.

        At most ``limit`` rows (a line of one statistics message), and never part of a message: a
        caller that moves its cursor to the last ``stats_id`` it got misses nothing.
        """
        rows = self.query(f"SELECT {self._SAMPLE_COLS} FROM line_counts WHERE stats_id > ? "
                          "ORDER BY stats_id, line_id LIMIT ?", (after_stats_id, limit))
        if len(rows) == limit and rows[0][-1] != rows[-1][-1]:
            rows = [r for r in rows if r[-1] != rows[-1][-1]]  # the last message may be cut: it comes next time
        return self._samples(rows)

    def flow_history(self, since_end: float, camera_id: str | None = None) -> list[tuple[Any, ...]]:
        """(camera_id, line_id, direction, start_ts, end_ts, observed_s, vehicles) ending at or after ``since_end``."""
        sql = f"SELECT {self._SAMPLE_COLS} FROM line_counts WHERE end_ts >= ?"
        params: list[Any] = [since_end]
        if camera_id:
            sql += " AND camera_id = ?"
            params.append(camera_id)
        return [(s.camera_id, s.line_id, s.direction, s.start_ts, s.end_ts, s.observed_s, s.vehicles)
                for s in self._samples(self.query(sql + " ORDER BY end_ts, line_id", params))]

    def nodes(self) -> list[dict[str, Any]]:
        cols = ["camera_id", "node_id", "status", "status_at", "last_stats_at", "last_interval_end", "interval_s",
                "last_seq", "seq_gaps", "messages"]
        return [dict(zip(cols, r)) for r in self.query(f"SELECT {', '.join(cols)} FROM nodes ORDER BY camera_id")]

    def add_decision(self, kind: str, subject: str, payload: dict[str, Any], at: float) -> None:
        self.execute("INSERT INTO decisions (kind, subject, created_at, payload) VALUES (?,?,?,?)",
                     (kind, subject, at, json.dumps(payload)))

    def latest_decisions(self, kind: str) -> dict[str, dict[str, Any]]:
        rows = self.query("SELECT d.subject, d.payload FROM decisions d JOIN (SELECT subject, MAX(id) AS id FROM "
                          "decisions WHERE kind = ? GROUP BY subject) m ON d.id = m.id ORDER BY d.subject", (kind,))
        return {s: json.loads(p) for s, p in rows}

    def add_alert(self, kind: str, subject: str, message: str, details: dict[str, Any], at: float) -> None:
        self.execute("INSERT INTO alerts (created_at, kind, subject, message, details) VALUES (?,?,?,?,?)",
                     (at, kind, subject, message, json.dumps(details)))

    def alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.query("SELECT id, created_at, kind, subject, message, details FROM alerts ORDER BY id DESC "
                          "LIMIT ?", (limit,))
        return [{"id": r[0], "created_at": r[1], "kind": r[2], "subject": r[3], "message": r[4],
                 "details": json.loads(r[5])} for r in rows]

    def add_choice(self, area: str, option_id: str, attributes: dict[str, Any], at: float) -> None:
        self.execute("INSERT INTO choices (area, option_id, received_at, attributes) VALUES (?,?,?,?)",
                     (area, option_id, at, json.dumps(attributes)))

    def choices(self, area: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self.query("SELECT option_id, attributes FROM choices WHERE area = ? ORDER BY id", (area,))
        return [(o, json.loads(a)) for o, a in rows]

    def add_meter(self, segment: str, start_ts: float, end_ts: float, kwh: float, level: float, flow: float,
                  at: float) -> bool:
        with self.transaction() as cur:
            cur.execute(self._sql("INSERT INTO meter (segment, start_ts, end_ts, kwh, level, flow_veh_h, "
                                  "received_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (segment, start_ts) DO NOTHING "
                                  "RETURNING segment"), (segment, start_ts, end_ts, kwh, level, flow, at))
            return cur.fetchone() is not None

    def count(self, table: str) -> int:
        if table not in {"stats", "line_counts", "events", "decisions", "alerts", "choices", "meter", "nodes"}:
            raise ValueError(f"unknown table {table!r}")
        return int(self.query(f"SELECT COUNT(*) FROM {table}")[0][0])


class SQLiteStore(Store):
    """SQLite in WAL mode: one file, readers never block the writer."""

    def __init__(self, path: Path | str):
        super().__init__()
        self.path = str(path)
        self._lock_fds: list[int] = []
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        c.execute("PRAGMA busy_timeout=30000")
        with self._writing():  # two replicas starting together: SQLite does not wait for a journal-mode switch
            c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        return c

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Writers on this host take turns on an advisory lock file (``<db>.write-lock``).

        SQLite lets one writer in at a time and makes the others poll: a replica that finds the
        file locked sleeps 1, 2, 5, 10 ms and more before it tries again, so two controllers on
        one file lost much of their time to those sleeps. Blocking on ``flock`` instead hands
        the turn over as soon as the other commits. Readers are not involved (WAL).
        """
        if fcntl is None or self.path == ":memory:":
            yield
            return
        fd = getattr(self._local, "lock_fd", None)
        if fd is None:
            fd = self._local.lock_fd = os.open(self.path + ".write-lock", os.O_RDWR | os.O_CREAT, 0o644)
            with self._all_lock:
                self._lock_fds.append(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        super().close()
        with self._all_lock:
            for fd in self._lock_fds:
                os.close(fd)
            self._lock_fds.clear()

    def _ddl(self, stmt: str) -> str:
        return stmt.format(pk="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL")

    def _lock_meta(self, cur: Any) -> None:
        cur.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")  # takes the write lock now


class PostgresStore(Store):
    """PostgreSQL through psycopg 3 (the ``postgres`` extra)."""

    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, url: str):
        super().__init__()
        try:
            import psycopg  # noqa: F401 - checked here so that the error names the extra
        except ImportError as exc:
            raise RuntimeError("store.postgres_url_env is set but psycopg is not installed; "
                               "pip install 'edge-agent[postgres]'") from exc
        self.url = url

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url)

    def _ddl(self, stmt: str) -> str:
        return stmt.format(pk="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION")

    def _lock_meta(self, cur: Any) -> None:
        cur.execute("LOCK TABLE meta IN EXCLUSIVE MODE")


def open_store(sqlite_path: Path | str, postgres_url: str | None = None) -> Store:
    """The configured store, migrated to the current schema."""
    store: Store = PostgresStore(postgres_url) if postgres_url else SQLiteStore(sqlite_path)
    store.migrate()
    return store
