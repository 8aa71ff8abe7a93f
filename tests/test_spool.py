"""The disk spool: order, acknowledgement, restart, bounds with counted drops."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge_agent.spool import Spool


def test_messages_keep_order_and_leave_only_on_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    outs = [spool.add("t/a/stats", {"n": i}) for i in range(5)]
    assert [o.seq for o in outs] == [1, 2, 3, 4, 5]
    docs = [json.loads(o.payload) for o in spool.pending()]
    assert [d["n"] for d in docs] == [0, 1, 2, 3, 4]
    assert len({d["message_id"] for d in docs}) == 5
    spool.ack(outs[1].id)
    assert [o.seq for o in spool.pending()] == [1, 3, 4, 5]
    assert [o.seq for o in spool.pending(after_id=outs[3].id)] == [5]
    assert spool.depth() == 4


def test_contents_and_sequence_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    for i in range(3):
        spool.add("t", {"n": i})
    spool.ack(spool.pending()[0].id)
    spool.close()  # as after a crash: nothing else is flushed, SQLite already has it
    again = Spool(tmp_path / "s.sqlite")
    assert [o.seq for o in again.pending()] == [2, 3]
    assert again.add("t", {"n": 3}).seq == 4
    assert again.bytes == sum(len(o.payload) for o in again.pending())


def test_size_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=1000)
    for i in range(30):
        spool.add("t", {"n": i, "pad": "x" * 50})
    left = [json.loads(o.payload)["n"] for o in spool.pending()]
    assert left == list(range(30 - len(left), 30)) and 0 < len(left) < 30
    assert spool.dropped == 30 - len(left)
    assert spool.bytes <= 1000
    spool.close()
    assert Spool(tmp_path / "s.sqlite").dropped == 30 - len(left)


def test_age_bound_drops_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_age_s=0.2)
    spool.add("t", {"n": 0})
    spool.add("t", {"n": 1})
    time.sleep(0.3)
    spool.add("t", {"n": 2})
    assert [json.loads(o.payload)["n"] for o in spool.pending()] == [2]
    assert spool.dropped == 2


def test_bad_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes must be > 0, got 0"):
        Spool(tmp_path / "s.sqlite", max_bytes=0)
