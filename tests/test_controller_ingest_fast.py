"""The compiled statistics validator: same verdicts as jsonschema, nothing fetched, reasons kept; batched seq gaps."""

from __future__ import annotations

import copy
import time
import json
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_agent.controller import ingest
from edge_agent.controller.app import Controller
from edge_agent.controller.store import SQLiteStore, StatsRow
from edge_agent.messages import load_schema
from test_controller_support import T0, config, stats_bytes


def _valid() -> dict[str, Any]:
    _, payload = stats_bytes("cam-n", T0, {"stop": (7, 2), "exit": (0, 3)})
    doc: dict[str, Any] = json.loads(payload)
    return doc


def _mutations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The valid document with one field removed, retyped or out of range, one at a time."""
    out = []
    odd: list[Any] = [None, True, 1, 1.5, -1, 0, "x", "", [], {}, "cam\n", "2024-01-01T00:00:00"]

    def walk(node: Any, path: list[Any]) -> None:
        if isinstance(node, dict):
            items = list(node.items())
        elif isinstance(node, list):
            items = list(enumerate(node))
        else:
            return
        for k, v in items:
            for new in odd:
                d = copy.deepcopy(doc)
                tgt = d
                for p in path:
                    tgt = tgt[p]
                tgt[k] = new
                out.append(d)
            if isinstance(node, dict):
                d = copy.deepcopy(doc)
                tgt = d
                for p in path:
                    tgt = tgt[p]
                del tgt[k]
                out.append(d)
            walk(v, [*path, k])
        if isinstance(node, dict):
            d = copy.deepcopy(doc)
            tgt = d
            for p in path:
                tgt = tgt[p]
            tgt["unexpected"] = 1
            out.append(d)

    walk(doc, [])
    return out


def test_fast_validator_agrees_with_jsonschema_on_valid_and_broken_documents() -> None:
    reference = jsonschema.validators.validator_for(load_schema("interval-stats.v1"))(load_schema("interval-stats.v1"))
    fast = ingest._validator("interval-stats.v1")
    assert fast is not None
    docs = [_valid(), {**_valid(), "message_id": "0b9a4c7e-3f5e-4a57-9d43-2f2f0e3b1c11", "seq": 3}]
    docs += _mutations(docs[1])
    assert len(docs) > 300
    for d in docs:
        try:
            fast.check(d)
            accepted = True
        except ingest.Invalid as exc:
            assert exc.reason == "schema" and str(exc)
            accepted = False
        if accepted:  # never weaker than the reference validator
            assert reference.is_valid(d), d
        elif reference.is_valid(d):  # stricter only where JSON numbers/strings are borderline
            assert any(v in (1.0, True) or (isinstance(v, str) and v.endswith("\n")) for v in _leaves(d)), d


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [x for v in node.values() for x in _leaves(v)]
    if isinstance(node, list):
        return [x for v in node for x in _leaves(v)]
    return [node]


def test_compiling_fetches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*a: Any, **k: Any) -> Any:
        raise AssertionError(f"network access: {a}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    ingest._validator.cache_clear()
    try:
        v = ingest._validator("interval-stats.v1")
        assert v is not None
        v.check(_valid())
        with pytest.raises(ingest.Invalid):  # a remote reference is refused, not fetched
            ingest.SchemaValidator({"$id": "x/y.json", "$ref": "https://example.com/s.json"}).check({})
    finally:
        ingest._validator.cache_clear()


def test_bad_statistics_are_refused_with_the_path_of_the_error_and_counted(tmp_path: Path) -> None:
    c = Controller(config(tmp_path), connect=False)
    try:
        doc = _valid()
        doc["lines"][0]["in"]["vehicles"] = -1
        with pytest.raises(ingest.Invalid, match=r"lines/0/in/vehicles: -1 is less than the minimum of 0"):
            ingest.validate_doc("interval-stats", doc)
        c.ingestor.handle("city/cam-n/stats", json.dumps(doc).encode())
        assert c.ingestor.flush()
        assert c.ingestor.snapshot().get("invalid.schema") == 1
        assert c.store.count("stats") == 0
    finally:
        c.close()


def _row(cam: str, seq: int | None) -> StatsRow:
    return StatsRow(f"{cam}-{seq}", None, cam, "n", seq, 0.0, 1.0, False, 1.0, 1.0, 0.0, "{}", ())


def test_batched_sequence_gaps_equal_one_call_per_message(tmp_path: Path) -> None:
    seqs = [("a", 1), ("b", 5), ("a", 2), ("a", 5), ("b", 4), ("a", 9), ("b", 6), ("c", None), ("a", 3)]
    one, batch = SQLiteStore(tmp_path / "one.db"), SQLiteStore(tmp_path / "batch.db")
    one.migrate()
    batch.migrate()
    single = [(cam, seq, one.record_seq(cam, seq)) for cam, seq in seqs[:4] if seq is not None]
    single += [(cam, seq, one.record_seq(cam, seq)) for cam, seq in seqs[4:] if seq is not None]
    got = [(r.camera_id, r.seq, g) for r, g in batch.record_seqs([_row(c, s) for c, s in seqs[:4]])]
    got += [(r.camera_id, r.seq, g) for r, g in batch.record_seqs([_row(c, s) for c, s in seqs[4:]])]
    assert got == [x for x in single if x[2]]
    assert one.query("SELECT camera_id, last_seq, seq_gaps FROM nodes ORDER BY camera_id") == \
        batch.query("SELECT camera_id, last_seq, seq_gaps FROM nodes ORDER BY camera_id")


class _CountingStore(SQLiteStore):
    """A real SQLite store that remembers the size of every statistics transaction."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.batches: list[int] = []

    def write_stats(self, rows: Any) -> tuple[list[StatsRow], list[StatsRow]]:
        rows = list(rows)
        self.batches.append(len(rows))
        return super().write_stats(rows)


def test_group_commit_gathers_a_burst_and_does_not_wait_once_it_is_over(tmp_path: Path) -> None:
    from datetime import timedelta

    store = _CountingStore(tmp_path / "c.db")
    store.migrate()
    burst = [stats_bytes(f"cam-{k % 20}", T0 + timedelta(minutes=k // 20), {"stop": (k % 7, 1)}) for k in range(600)]
    ing = ingest.Ingestor(store, "city", batch_max=300, linger_s=1.0)
    try:
        for topic, payload in burst:  # as from the network: one every half millisecond or so
            ing.handle(topic, payload)
            time.sleep(0.0005)
        assert ing.flush(30)
        assert sum(store.batches) == 600 and store.count("stats") == 600
        # committed as they come (linger_s=0), these take a hundred or more small transactions here;
        # lingering while messages keep arriving gathers them into batch_max-sized ones
        assert len(store.batches) <= 6, store.batches
        # one message with nothing behind it (or a broker holding the rest until these are
        # acknowledged): committed after one empty poll, not after the whole linger time
        topic, payload = stats_bytes("cam-x", T0, {"stop": (1, 1)})
        t0 = time.monotonic()
        ing.handle(topic, payload)
        assert ing.flush(5)
        assert time.monotonic() - t0 < 0.5
    finally:
        ing.close()
        store.close()
