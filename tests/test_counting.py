"""Line crossing, as tables of anchor positions per frame.

The line in every table is the horizontal segment (100, 100) -> (300, 100),
in = right side walking p1 -> p2, which on the image is *below* the line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from edge_agent.counting import LineCounter, segments_intersect, side_of
from edge_agent.types import Direction, Tracks

NAMES = ["person", "car", "bus"]
Pos = tuple[float, float]


def tracks(frame: Mapping[int, Pos | tuple[float, float, int]], coasting: Sequence[int] = ()) -> Tracks:
    """Tracks whose bottom-centre anchors are at the given positions (optionally with a class id)."""
    ids = sorted(frame)
    xyxy, cls = [], []
    for i in ids:
        x, y, *k = frame[i]
        xyxy.append([x - 10, y - 40, x + 10, y])
        cls.append(k[0] if k else 1)
    n = len(ids)
    return Tracks(track_id=np.array(ids, np.int64), xyxy=np.array(xyxy, np.float32).reshape(n, 4),
                  confidence=np.ones(n, np.float32), class_id=np.array(cls, np.int64),
                  det_index=np.array([-1 if i in coasting else j for j, i in enumerate(ids)], np.int64),
                  velocity=np.zeros((n, 2), np.float32))


def run(frames: Sequence[Mapping[int, Pos | tuple[float, float, int]]], in_side: str = "right",
        hysteresis: float = 3.0, coasting: Mapping[int, Sequence[int]] | None = None) -> list[tuple[int, str, str]]:
    counter = LineCounter("L", (100, 100), (300, 100), in_side, "cam", NAMES, hysteresis_px=hysteresis)
    events = []
    for t, frame in enumerate(frames):
        events += counter.update(tracks(frame, (coasting or {}).get(t, ())), float(t))
    return [(e.track_id, e.direction.value, e.class_name) for e in events]


CASES = {
    "clean crossing downwards is in": (
        [{1: (200, 60)}, {1: (200, 90)}, {1: (200, 110)}, {1: (200, 140)}],
        [(1, "in", "car")]),
    "clean crossing upwards is out": (
        [{1: (150, 140)}, {1: (150, 104)}, {1: (150, 96)}, {1: (150, 60)}],
        [(1, "out", "car")]),
    "one big step across counts": (
        [{1: (200, 20)}, {1: (200, 180)}],
        [(1, "in", "car")]),
    "motion across the extension left of p1 does not count": (
        [{1: (50, 60)}, {1: (50, 100)}, {1: (50, 140)}],
        []),
    "motion across the extension right of p2 does not count": (
        [{1: (350, 140)}, {1: (340, 60)}],
        []),
    "diagonal path passing outside the end point does not count": (
        [{1: (90, 60)}, {1: (60, 140)}],
        []),
    "motion along the line does not count": (
        [{1: (90, 100)}, {1: (150, 100)}, {1: (250, 100)}, {1: (310, 100)}],
        []),
    "jitter inside the dead band after a crossing counts once": (
        [{1: (200, 80)}, {1: (200, 110)}, {1: (200, 99)}, {1: (200, 101)}, {1: (200, 98)},
         {1: (200, 102)}, {1: (200, 120)}],
        [(1, "in", "car")]),
    "walking back and forth over the line counts every crossing": (
        [{1: (200, 80)}, {1: (200, 120)}, {1: (200, 80)}, {1: (200, 120)}, {1: (200, 80)}],
        [(1, "in", "car"), (1, "out", "car"), (1, "in", "car"), (1, "out", "car")]),
    "a track missing from one frame keeps its side": (
        [{1: (200, 80)}, {2: (150, 150)}, {1: (200, 120)}],
        [(1, "in", "car")]),
    "two tracks crossing in the same frame, opposite ways": (
        [{1: (120, 60), 2: (280, 140, 2)}, {1: (120, 140), 2: (280, 60, 2)}],
        [(1, "in", "car"), (2, "out", "bus")]),
    "a track that appears on the line is not counted": (
        [{1: (200, 100)}, {1: (200, 120)}, {1: (200, 150)}],
        []),
    "a track that appears already past the line is not counted": (
        [{1: (200, 130)}, {1: (200, 150)}],
        []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_crossing_table(name: str) -> None:
    frames, expected = CASES[name]
    assert run(frames) == expected


def test_in_side_left_swaps_directions() -> None:
    frames, _ = CASES["clean crossing downwards is in"]
    assert run(frames, in_side="left") == [(1, "out", "car")]


def test_coasting_tracks_do_not_move_the_counter() -> None:
    # frame 2's position is a Kalman prediction (det_index -1): only seen positions count
    frames = [{1: (200, 60)}, {1: (200, 80)}, {1: (200, 140)}, {1: (200, 70)}]
    assert run(frames, coasting={2: [1]}) == []


def test_track_occluded_while_crossing_is_counted_when_seen_again() -> None:
    # frames 1-2: the tracker coasts the track (no detection, e.g. behind a lamp post)
    frames = [{1: (200, 60)}, {1: (200, 90)}, {1: (200, 120)}, {1: (200, 150)}]
    assert run(frames, coasting={1: [1], 2: [1]}) == [(1, "in", "car")]


def test_state_is_pruned_when_the_tracker_drops_a_track() -> None:
    counter = LineCounter("L", (100, 100), (300, 100), "right", "cam", NAMES, forget_s=2.0)
    for t in range(50):  # two new tracks a second, each reported once
        counter.update(tracks({t: (200, 60), t + 1000: (150, 140)}), float(t))
        assert len(counter) <= 2 * 3  # the tracks of the last forget_s


def test_event_fields() -> None:
    counter = LineCounter("stop-bar", (100, 100), (300, 100), "right", "north", NAMES)
    counter.update(tracks({7: (200, 60, 0)}), 10.0)
    (event,) = counter.update(tracks({7: (200, 160, 0)}), 10.5)
    # the anchor went from y=60 to y=160 across the line at y=100: 40 % of the way, so 10.2 s
    assert (event.camera_id, event.line_id, event.track_id, event.class_name, event.direction, event.ts) == (
        "north", "stop-bar", 7, "person", Direction.IN, 10.2)


def test_geometry_helpers() -> None:
    pts = np.array([[0.0, 10.0], [0.0, -10.0], [5.0, 0.0]])
    assert side_of((0, 0), (10, 0), pts).tolist() == [10.0, -10.0, 0.0]
    p = np.array([[5.0, -5.0], [15.0, -5.0], [10.0, -1.0]])
    q = np.array([[5.0, 5.0], [15.0, 5.0], [10.0, 0.0]])
    assert segments_intersect(p, q, (0, 0), (10, 0)).tolist() == [True, False, True]


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="in_side must be 'left' or 'right', got 'up'"):
        LineCounter("L", (0, 0), (1, 1), "up", "cam", NAMES)
    with pytest.raises(ValueError, match="same point"):
        LineCounter("L", (3, 3), (3, 3), "left", "cam", NAMES)
    with pytest.raises(ValueError, match="reverse_s must be >= 0, got -1"):
        LineCounter("L", (0, 0), (1, 1), "left", "cam", NAMES, reverse_s=-1)


def test_a_vehicle_is_not_counted_back_over_a_line_soon_after_crossing_it() -> None:
    """A bus crosses in; 1 s later, half hidden behind a truck, its box's bottom edge moves back over the
    line (seed 13 of the synthetic clips). A person walking back is counted; so is a bus after 2 s.
    The anchor crosses at 1 s, back at 1 s + ``every_s``, and again at 1 s + 2 ``every_s``."""
    def counted(cls: int, every_s: float) -> list[tuple[int, str, str]]:
        counter = LineCounter("L", (100, 100), (300, 100), "right", "cam", NAMES, reverse_s=2.0,
                              no_reverse={"car", "bus"})
        path = [(0.0, 80.0), (1.0, 120.0), (1.0 + every_s, 80.0), (1.0 + 2 * every_s, 120.0)]
        events = []
        for t, y in path:
            events += counter.update(tracks({1: (200, y, cls)}), t)
        return [(e.track_id, e.direction.value, e.class_name) for e in events]

    assert counted(2, 1.0) == [(1, "in", "bus")]  # back out, and in again: still the one crossing
    assert counted(0, 1.0) == [(1, "in", "person"), (1, "out", "person"), (1, "in", "person")]
    assert counted(2, 2.5) == [(1, "in", "bus"), (1, "out", "bus"), (1, "in", "bus")]
