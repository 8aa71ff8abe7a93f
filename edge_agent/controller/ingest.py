"""MQTT message -> validated row -> store, one handler per message kind.

Topics (``prefix`` is ``mqtt.topic_prefix``)::

    {prefix}/{camera}/stats               interval statistics (schema interval-stats.v<schema_version>)
    {prefix}/{camera}/status              "online" / "offline" (retained)
    {prefix}/{camera}/events              crossing events (stored as they come; schema when one ships)
    {prefix}/{camera}/presence            per-lane occupancy/queue, 1-2 s, QoS 0 (kept in memory only)
    {prefix}/lighting/{segment}/meter     metered energy of a lighting segment (energy model)
    {prefix}/services/{area}/choice       an observed choice of a service option (logit fitting)

A bad message is logged (rate-limited) and counted by reason; it never raises
out of :meth:`Ingestor.handle`. Statistics are de-duplicated by
``message_id`` when the message has one, else by
``(camera_id, interval.start, interval.end, partial)``; the UNIQUE key in the
store makes that hold across replicas and restarts.

Statistics are validated in the MQTT thread and written in batches by a
writer thread (one transaction per batch), so that the broker's network loop
never waits for the disk.

Acknowledgement after storage: :meth:`Ingestor.handle` takes an optional
``ack`` callback (the MQTT client's PUBACK of that message, see
``mqtt_io.ControllerClient``). Every message's ``ack`` goes through the
writer's queue in the order the messages came, and is called only once the
batch in front of it is committed: a controller that dies with statistics still
in memory has not acknowledged them, and the broker delivers them again (to
this client id's persistent session when it comes back). Statistics whose
commit fails are not acknowledged either.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from edge_agent.controller.store import StatsRow, Store
from edge_agent.messages import STATS_SCHEMA, load_schema

log = logging.getLogger(__name__)

KINDS = ("stats", "status", "events", "presence")

Ack = Callable[[], object]
LINGER_POLL_S = 0.002  # group commit: the writer commits when a poll this long finds nothing new


class Invalid(ValueError):
    """A message was refused; ``reason`` is its counter name."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _no_fetch(uri: str) -> Any:
    raise Invalid("schema", f"schema refers to {uri!r}; the controller fetches nothing, schemas must be local")


class SchemaValidator:
    """One schema compiled once (``jsonschema-rs``, a Rust validator): the check and the reason of a refusal.

    Formats are not asserted (``format`` is an annotation here, as with jsonschema's
    default of no format checker; the interval times are parsed anyway). The
    retriever refuses every remote reference, so compiling
    never touches the network. One statistics message of ``scripts/bench_controller.py``
    validates in 1.6 us, against 301 us with jsonschema and 15 us with the compiled-Python
    fastjsonschema this replaced (measured on 2026-11-29; the first two with
    ``python -m timeit`` on ``_validator("interval-stats.v1").check(doc)`` and on
    ``jsonschema.validators.validator_for(schema)(schema).validate(doc)``).
    """

    def __init__(self, schema: dict[str, Any]):
        import jsonschema_rs

        self._error = jsonschema_rs.ValidationError
        try:
            self._v = jsonschema_rs.validator_for(schema, validate_formats=False, retriever=_no_fetch)
        except jsonschema_rs.ValidationError as exc:  # a reference it could not resolve locally
            raise Invalid("schema", str(exc).splitlines()[0]) from None

    def check(self, doc: Any) -> None:
        """Raise :class:`Invalid` (reason ``schema``) with the path and cause of the first error."""
        if self._v.is_valid(doc):
            return
        err = min(self._v.iter_errors(doc), key=lambda e: len(e.instance_path))
        where = "/".join(str(p) for p in err.instance_path) or "(top level)"
        raise Invalid("schema", f"{where}: {err.message}") from None


@cache
def _validator(name: str) -> SchemaValidator | None:
    """A compiled validator, or None if no schema of that name ships."""
    if not resources.files("edge_agent.schemas").joinpath(f"{name}.json").is_file():
        return None
    return SchemaValidator(load_schema(name))


def validate_doc(family: str, doc: Any) -> None:
    """Validate against ``{family}.v{schema_version}`` (the version the message names)."""
    if not isinstance(doc, dict):
        raise Invalid("not_object", f"expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise Invalid("schema", f"schema_version must be an integer, got {version!r}")
    v = _validator(f"{family}.v{version}")
    if v is None:
        raise Invalid("schema_version", f"no schema {family}.v{version} in edge_agent/schemas; this controller "
                                        f"knows the versions shipped with it")
    v.check(doc)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def stats_row(doc: dict[str, Any], topic_camera: str, payload: str, received_at: float) -> StatsRow:
    """A validated statistics document as a store row."""
    validate_doc("interval-stats", doc)
    if doc["camera_id"] != topic_camera:
        raise Invalid("topic_mismatch", f"camera_id {doc['camera_id']!r} differs from the topic's {topic_camera!r}")
    iv = doc["interval"]
    try:
        start, end = _epoch(iv["start"]), _epoch(iv["end"])
    except ValueError as exc:
        raise Invalid("schema", f"interval: {exc}") from None
    if end <= start:
        raise Invalid("schema", f"interval: end {iv['end']} is not after start {iv['start']}")
    message_id = doc.get("message_id")
    key = (f"id:{message_id}" if message_id is not None
           else f"{doc['camera_id']}|{iv['start']}|{iv['end']}|{int(iv['partial'])}")
    lines = tuple((ln["line_id"], ln["in"]["vehicles"], ln["in"]["total"], ln["out"]["vehicles"], ln["out"]["total"])
                  for ln in doc["lines"])
    seq = doc.get("seq")
    return StatsRow(key, None if message_id is None else str(message_id), doc["camera_id"], doc["node_id"],
                    seq if isinstance(seq, int) else None, start, end, bool(iv["partial"]), float(iv["length_s"]),
                    float(iv["observed_s"]), received_at, payload, lines)


class Ingestor:
    """Routes MQTT messages by topic to a handler per kind and writes statistics in batches.

    Args:
        store: where rows go (its writer connection lives in the writer thread).
        prefix: topic prefix of the nodes.
        batch_max: most statistics per transaction.
        linger_s: group commit. While statistics keep coming, the writer waits up to this
            long for more before it commits, and commits as soon as a poll
            (every :data:`LINGER_POLL_S`) finds nothing new (a burst is over, or the broker
            holds the rest until these are acknowledged) or ``batch_max`` are queued.
            A transaction has a fixed cost of about 15 messages' rows (SQLite, WAL), so
            under load a writer that commits whatever is queued makes many small, costly
            batches; 0 does that.
        on_presence: called with (camera_id, document) for each valid presence message
            (the signal planner's fast path).
        on_choice / on_meter: called with (subject, document) for those topics.

    """

    def __init__(self, store: Store, prefix: str, batch_max: int = 500, linger_s: float = 0.05,
                 on_presence: Callable[[str, dict[str, Any]], None] | None = None,
                 on_choice: Callable[[str, dict[str, Any], float], None] | None = None,
                 on_meter: Callable[[str, dict[str, Any], float], None] | None = None):
        self.store = store
        self.prefix = prefix
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._received = 0  # only handle() adds to it (the MQTT thread): no lock per message
        # (row or None, ack or None) in the order of receipt; None alone stops the writer. A
        # SimpleQueue (put 0.04 us against 0.6 for queue.Queue), with its own count of what is queued
        # and what the writer has finished, for flush(): next() on a count is atomic in CPython.
        self._queue: queue.SimpleQueue[tuple[StatsRow | None, Ack | None] | None] = queue.SimpleQueue()
        self._queued = itertools.count(1)
        self._last_queued = 0
        self._finished = 0  # only the writer thread adds to it
        self._recent: OrderedDict[str, None] = OrderedDict()  # in-memory dedupe of redeliveries
        self._recent_max = 100_000
        self._last_log: dict[str, float] = {}
        self.on_presence = on_presence
        self.on_choice = on_choice
        self.on_meter = on_meter
        self._handlers: dict[str, Callable[[str, bytes, float], None]] = {  # statistics: see handle()
            "status": self._status, "events": self._events, "presence": self._presence}
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._writer.start()

    # -- routing
    def subscriptions(self) -> list[str]:
        """Topic filters, without the $share prefix."""
        return [f"{self.prefix}/+/{k}" for k in KINDS] + [f"{self.prefix}/lighting/+/meter",
                                                          f"{self.prefix}/services/+/choice"]

    def handle(self, topic: str, payload: bytes, received_at: float | None = None, ack: Ack | None = None) -> None:
        """Process one MQTT message; never raises.

        ``ack`` (optional) is called from the writer thread once everything received
        before this message and this message itself are stored (or refused).
        """
        t = time.time() if received_at is None else received_at
        self._received += 1
        row = None
        try:
            rest = topic[len(self.prefix) + 1:] if topic.startswith(self.prefix + "/") else None
            parts = rest.split("/") if rest else []
            if len(parts) == 2 and parts[1] == "stats":
                row = self._stats(parts[0], payload, t)
            elif len(parts) == 2 and parts[1] in self._handlers:
                self._handlers[parts[1]](parts[0], payload, t)
            elif len(parts) == 3 and parts[0] == "lighting" and parts[2] == "meter":
                self._subject_doc(self.on_meter, parts[1], payload, t)
            elif len(parts) == 3 and parts[0] == "services" and parts[2] == "choice":
                self._subject_doc(self.on_choice, parts[1], payload, t)
            else:
                raise Invalid("unknown_topic", "no handler for this topic")
        except Invalid as exc:
            self._refuse(exc.reason, topic, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in one handler must not stop ingestion
            self._refuse("error", topic, f"{type(exc).__name__}: {exc}")
            log.debug("handler error", exc_info=True)
        if row is not None or ack is not None:
            self._put((row, ack))

    def _put(self, item: tuple[StatsRow | None, Ack | None] | None) -> None:
        self._last_queued = next(self._queued)
        self._queue.put(item)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def _refuse(self, reason: str, topic: str, detail: str) -> None:
        self._count(f"invalid.{reason}")
        now = time.monotonic()
        if now - self._last_log.get(reason, -1e9) >= 10:  # at most one log line per reason per 10 s
            self._last_log[reason] = now
            log.warning("refused a message on %s (%s): %s [total %s: %d]", topic, reason, detail[:300], reason,
                        self.counters[f"invalid.{reason}"])

    @staticmethod
    def _json(payload: bytes) -> Any:
        try:
            return json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Invalid("json", f"not JSON: {exc}") from None

    # -- handlers
    def _stats(self, camera: str, payload: bytes, t: float) -> StatsRow | None:
        """The row to store, or None for a repeat."""
        doc = self._json(payload)
        if isinstance(doc, dict) and doc.get("schema") not in (None, STATS_SCHEMA):
            raise Invalid("schema", f"schema {doc.get('schema')!r} is not {STATS_SCHEMA!r}")
        row = stats_row(doc, camera, payload.decode(), t)
        with self._lock:
            if row.dedupe_key in self._recent:
                self.counters["duplicate"] += 1
                return None
            self._recent[row.dedupe_key] = None
            if len(self._recent) > self._recent_max:
                self._recent.popitem(last=False)
        return row

    def _status(self, camera: str, payload: bytes, t: float) -> None:
        text = payload.decode(errors="replace").strip()
        if text not in ("online", "offline"):
            raise Invalid("status", f"expected 'online' or 'offline', got {text[:40]!r}")
        self.store.set_status(camera, text, t)
        self._count("status")

    def _events(self, camera: str, payload: bytes, t: float) -> None:
        doc = self._json(payload)
        if not isinstance(doc, dict):
            raise Invalid("not_object", "expected a JSON object")
        if "schema_version" in doc and _validator(f"events.v{doc['schema_version']}") is not None:
            validate_doc("events", doc)
        mid = doc.get("message_id")
        key = f"id:{mid}" if mid is not None else f"{camera}|{payload.decode()}"
        stored = self.store.write_event(key, "events", camera, t, payload.decode())
        self._count("events" if stored else "duplicate")

    def _presence(self, camera: str, payload: bytes, t: float) -> None:
        doc = self._json(payload)
        if not isinstance(doc, dict):
            raise Invalid("not_object", "expected a JSON object")
        if "schema_version" in doc and _validator(f"presence.v{doc['schema_version']}") is not None:
            validate_doc("presence", doc)
        self._count("presence")
        if self.on_presence is not None:
            self.on_presence(camera, doc)

    def _subject_doc(self, cb: Callable[[str, dict[str, Any], float], None] | None, subject: str, payload: bytes,
                     t: float) -> None:
        doc = self._json(payload)
        if not isinstance(doc, dict):
            raise Invalid("not_object", "expected a JSON object")
        if cb is None:
            raise Invalid("unknown_topic", "nothing configured for this subject")
        cb(subject, doc, t)

    # -- writer thread
    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._finished += 1
                return
            self._linger()
            items = [first]
            stop = False
            rows = 1 if first[0] is not None else 0
            while rows < self.batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                items.append(item)
                rows += item[0] is not None
            batch = [r for r, _ in items if r is not None]
            stored = self._write(batch) if batch else True
            for r, ack in items:
                if ack is not None and (stored or r is None):
                    try:
                        ack()
                    except Exception as exc:  # noqa: BLE001 - the broker redelivers what is not acknowledged
                        log.warning("acknowledging a message failed: %s", exc)
            self._finished += len(items) + stop
            if stop:
                return

    def _linger(self) -> None:
        """Wait while more statistics keep arriving, up to ``linger_s`` and ``batch_max`` (group commit)."""
        deadline = time.monotonic() + self.linger_s
        queued = self._queue.qsize()
        while queued + 1 < self.batch_max and time.monotonic() + LINGER_POLL_S <= deadline:
            time.sleep(LINGER_POLL_S)
            now = self._queue.qsize()
            if now == queued:
                return
            queued = now

    def _write(self, batch: list[StatsRow]) -> bool:
        """Store a batch (retrying); False when it could not be stored."""
        for attempt in range(5):
            try:
                stored, dups = self.store.write_stats(batch)
                break
            except Exception as exc:  # noqa: BLE001 - database busy or gone: retry, then give up unacknowledged
                log.error("storing %d statistics failed (attempt %d): %s", len(batch), attempt + 1, exc)
                time.sleep(0.5 * (attempt + 1))
        else:
            self._count("store_failed", len(batch))
            return False
        self._count("stored", len(stored))
        self._count("duplicate", len(dups))
        try:
            gaps = self.store.record_seqs(stored)
        except Exception as exc:  # noqa: BLE001 - the rows are stored; gap detection must not stop the writer
            log.error("recording sequence numbers of %d statistics failed: %s", len(stored), exc)
            return True
        for r, gap in gaps:
            self._count("seq_gap", gap)
            self.store.add_alert("sequence_gap", r.camera_id, f"camera {r.camera_id}: {gap} statistics "
                                 f"message(s) missing before seq {r.seq} (broker queue overflow?)",
                                 {"seq": r.seq, "missing": gap}, time.time())
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued statistic is written."""
        deadline = time.monotonic() + timeout
        while self._finished < self._last_queued and time.monotonic() < deadline:
            time.sleep(0.005)
        return self._finished >= self._last_queued

    def close(self, timeout: float = 10.0) -> None:
        self._put(None)
        self._writer.join(timeout)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = dict(self.counters)
        out["received"] = self._received
        return out
