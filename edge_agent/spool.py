"""Store and forward: an on-disk queue of one camera's outgoing messages (SQLite, WAL).

Every statistics message is written here *before* it is handed to MQTT and is
deleted only when the broker has acknowledged it (QoS 1 PUBACK). A broker
outage, a network cut or a crash of the agent therefore loses nothing: what is
still in the spool is sent again, in order, after the next (re)start.

Each message gets a per-camera sequence number (``seq``, starting at 1 and
never reused, it survives restarts) and a random ``message_id``. Delivery is
at-least-once; a subscriber drops duplicates by ``message_id`` and sees gaps
from ``seq``.

The spool is bounded by size and by age. When a bound is hit, the *oldest*
messages are dropped and counted (``dropped`` survives restarts and is
reported in the health record) — never silently.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    seq     INTEGER NOT NULL,
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Outgoing:
    """A spooled message waiting for its acknowledgement."""

    id: int
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Spool:
    """Durable outbox of one camera.

    Args:
        path: SQLite file (created with its directory).
        max_bytes: bound on the payload bytes held; oldest dropped beyond it.
        max_age_s: messages older than this are dropped (oldest first).
    """

    def __init__(self, path: str | Path, max_bytes: int = 100 * 2**20, max_age_s: float = 7 * 86400):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a record acknowledged by add() survives power loss
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._bytes = int(row[0])

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int) -> int:
        self._db.execute("INSERT INTO counters(name, value) VALUES(?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, by))
        return self._counter(name)

    def add(self, topic: str, doc: Mapping[str, Any], qos: int = 1, retain: bool = False) -> Outgoing:
        """Assign ``seq`` and ``message_id`` to a JSON document and store it durably.

        Returns:
            The stored message; ``doc`` itself is not modified.
        """
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._bump("seq", 1)
                body = {**doc, "message_id": str(uuid.uuid4()), "seq": seq}
                payload = json.dumps(body, separators=(",", ":")).encode()
                cur = self._db.execute(
                    "INSERT INTO outbox(seq, topic, payload, qos, retain, created) VALUES(?, ?, ?, ?, ?, ?)",
                    (seq, topic, payload, qos, int(retain), now))
                self._bytes += len(payload)
                self._enforce_bounds(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Outgoing(int(cur.lastrowid or 0), seq, topic, payload, qos, retain)

    def _enforce_bounds(self, now: float) -> None:
        dropped = 0
        aged = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE created < ?",
                                (now - self.max_age_s,)).fetchone()
        if aged[0]:
            self._db.execute("DELETE FROM outbox WHERE created < ?", (now - self.max_age_s,))
            self._bytes -= int(aged[1])
            dropped += int(aged[0])
        while self._bytes > self.max_bytes:
            row = self._db.execute("SELECT id, LENGTH(payload) FROM outbox ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
            self._bytes -= int(row[1])
            dropped += 1
        if dropped:
            self._bump("dropped", dropped)

    def pending(self, after_id: int = 0, limit: int = 100) -> list[Outgoing]:
        """Messages not yet acknowledged, oldest first, with ``id > after_id``."""
        with self._lock:
            rows = self._db.execute("SELECT id, seq, topic, payload, qos, retain FROM outbox WHERE id > ? "
                                    "ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        return [Outgoing(int(r[0]), int(r[1]), str(r[2]), bytes(r[3]), int(r[4]), bool(r[5])) for r in rows]

    def ack(self, message_id: int) -> None:
        """The broker acknowledged the message: forget it."""
        with self._lock:
            row = self._db.execute("SELECT LENGTH(payload) FROM outbox WHERE id = ?", (message_id,)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
                self._bytes -= int(row[0])

    def depth(self) -> int:
        """Messages waiting for an acknowledgement."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Messages dropped by the size or age bound since the spool was created."""
        with self._lock:
            return self._counter("dropped")

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._counter("seq")

    def close(self) -> None:
        with self._lock:
            self._db.close()
