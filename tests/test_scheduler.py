"""Prefetch, batched and fairly shared inference, thread budgets: on real frames and real models."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from agent_support import make_clip
from conftest import FIXTURES, free_port
from dynamic_model import red_box_model
from edge_agent.config import CameraConfig, ConfigError, ModelConfig, PerformanceConfig, parse_config
from edge_agent.detection import Detector
from edge_agent.messages import STATS_SCHEMA
from edge_agent.pipeline import CameraPipeline
from edge_agent.scheduler import InferenceScheduler, Prefetcher, ThreadBudget, default_batch
from edge_agent.sources import VideoSource, open_capture
from edge_agent.spool import Outgoing
from edge_agent.types import Message

TINY = FIXTURES / "detector" / "tiny_yolo11.onnx"
MJPEG_SERVER = Path(__file__).with_name("mjpeg_server.py")


def dynamic_batch_copy(src: Path, dst: Path) -> Path:
    """The model with a dynamic batch dimension (Reshape targets take the batch from their input)."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[0] not in inits and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            if shape.ndim == 1 and shape[0] == 1:
                shape[0] = 0  # 0: copy the input's dimension
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    del graph.value_info[:]
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def clip(vtest_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(vtest_video, tmp_path_factory.mktemp("clip") / "vtest_12.avi", 12)


@pytest.fixture(scope="module")
def frames(clip: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            return out
        out.append(img)


@pytest.mark.parametrize("depth", [0, 2])
def test_prefetch_of_a_file_gives_every_frame_in_order_prepared(clip: Path, coco_model: Path, depth: int) -> None:
    det = Detector(coco_model, device="cpu")
    stop = threading.Event()
    source = VideoSource(CameraConfig(id="cam", source=str(clip)), stop)
    items = list(Prefetcher(source.frames(), det.preprocess, depth=depth))
    assert [i.frame.seq for i in items if i.frame] == list(range(12))
    assert all(i.dropped == 0 and i.error is None for i in items)
    for item in items:
        assert item.frame is not None and item.tensor is not None
        tensor, lb = det.preprocess(item.frame.image)
        assert np.array_equal(item.tensor, tensor) and item.letterbox == lb


def test_decode_threads_one_decodes_in_the_reading_thread_with_the_same_frames(clip: Path) -> None:
    """performance.decode_threads: 1 (the default) starts no FFmpeg decoding thread beside the camera's
    own; the frames equal those of OpenCV's default (one decoding thread per core)."""
    import cv2

    def frames(threads: int) -> tuple[list[np.ndarray], int]:
        before = len(os.listdir("/proc/self/task"))
        it = VideoSource(CameraConfig(id="cam", source=str(clip)), threading.Event(), threads).frames()
        images = [f.image for f, _ in it if f is not None]  # the capture is open until the last frame
        return images, max(len(os.listdir("/proc/self/task")) - before, 0)

    one, extra_one = frames(1)
    default, _ = frames(0)
    assert len(one) == 12 and all(np.array_equal(a, b) for a, b in zip(one, default, strict=True))
    assert extra_one == 0
    # a parameter the backends refuse: opened without it rather than not at all
    cap = open_capture(str(clip), params=[cv2.CAP_PROP_ZOOM, 1])
    assert cap.isOpened() and cap.read()[0]
    cap.release()


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"MJPEG server did not listen on {port}")


def test_live_camera_newest_frame_wins_and_every_skipped_frame_is_counted(vtest_video: Path,
                                                                          coco_model: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(MJPEG_SERVER), str(vtest_video), str(port)])
    stop = threading.Event()
    try:
        _wait_port(port)
        det = Detector(coco_model, device="cpu")
        source = VideoSource(CameraConfig(id="live", source=f"http://127.0.0.1:{port}/"), stop)
        replaced: list[int] = []
        feed = Prefetcher(source.frames(), det.preprocess, depth=2, newest_wins=True, on_drop=replaced.append,
                          live_clock=True)
        got = []
        ages = []
        t_end = time.monotonic() + 4
        for item in feed:
            if item.frame is not None:
                got.append(item)
                ages.append(time.time() - item.captured)
                time.sleep(0.4)  # inference slower than the camera (10 fps)
            if time.monotonic() > t_end and len(got) >= 6:
                break
        stop.set()
        feed.close()
    finally:
        stop.set()
        server.kill()
        server.wait()
    seqs = [i.frame.seq for i in got if i.frame]
    assert seqs == sorted(set(seqs))
    # every frame between two processed ones was dropped and counted, none twice
    assert all(b - a - 1 == item.dropped for a, b, item in zip(seqs, seqs[1:], got[1:]))
    assert sum(i.dropped for i in got[1:]) >= 2 * (len(got) - 1)   # 0.4 s per frame at 10 fps
    assert sum(replaced) > 0 and source.counters.dropped + sum(replaced) >= sum(i.dropped for i in got[1:])
    # no backlog: a frame is fresh when taken although each one takes 0.4 s to process
    assert float(np.median(ages[1:])) < 0.3, ages


def test_batched_inference_gives_each_camera_its_own_output(tmp_path: Path, frames: list[np.ndarray]) -> None:
    det = Detector(dynamic_batch_copy(TINY, tmp_path / "tiny_dyn.onnx"), confidence=0.01, device="cpu")
    assert det.batch_capacity(4) == 4
    sched = InferenceScheduler(det, max_batch=4, batch_wait_s=0.2)
    cams = [f"cam{i}" for i in range(4)]
    for c in cams:
        sched.register(c)
    results: dict[str, list[np.ndarray]] = {}

    def camera(c: str, imgs: list[np.ndarray]) -> None:
        results[c] = [sched.infer(c, det.preprocess(img)[0]).output for img in imgs]

    work = {c: frames[i * 3:(i + 1) * 3] for i, c in enumerate(cams)}
    threads = [threading.Thread(target=camera, args=(c, work[c])) for c in cams]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sched.close()
    assert sched.stats.frames == 12 and sched.stats.mean_batch > 1.5
    for c in cams:
        for img, out in zip(work[c], results[c]):
            alone = det.infer(det.preprocess(img)[0])
            assert out.shape == alone.shape
            np.testing.assert_allclose(out, alone, rtol=0, atol=1e-4 * float(np.abs(alone).max()))


def test_a_batch_holds_frames_of_one_shape(tmp_path: Path, frames: list[np.ndarray]) -> None:
    """Rect input shapes: cameras of different frame sizes give tensors of different shapes. A batch
    takes the first camera's shape; the others wait for a later call, without waiting in vain for a
    camera whose frames could not join them."""
    det = Detector(red_box_model(tmp_path / "red_box.onnx"), device="cpu")
    sched = InferenceScheduler(det, max_batch=2, batch_wait_s=5.0)
    assert sched.max_batch == 2 and det.rect
    calls: list[tuple[int, ...]] = []
    infer = det.infer

    def recording(tensor: np.ndarray, stream: int = 0) -> np.ndarray:
        calls.append(tensor.shape)
        return infer(tensor, stream)

    det.infer = recording  # type: ignore[method-assign]
    cams = ["wide1", "small", "wide2"]  # 768x576 frames (480x640 tensors), 501x333 (448x640), 768x576
    tensors: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    outputs: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    t0 = time.monotonic()
    try:
        for i in range(3):
            for k, c in enumerate(cams):  # each camera's own red box, so that outputs differ
                img = (frames[i][:333, :501] if c == "small" else frames[i]).copy()
                img[40 + 20 * k + 5 * i:120 + 20 * k, 60 + 50 * k:160 + 50 * k + 7 * i] = (0, 0, 255)
                tensors[c].append(det.preprocess(img)[0])
            with sched._cond:  # all three cameras' frames wait together
                tickets = [sched.submit(c, tensors[c][i]) for c in cams]
            for c, t in zip(cams, tickets, strict=True):
                assert t.done.wait(30), f"{c}'s frame {i} never came back: {calls}"
                outputs[c].append(t.wait().output)
    finally:
        sched.close()
    elapsed = time.monotonic() - t0
    # turn order: wide1, small, wide2; small runs alone, and wide2 joins wide1 in its place
    assert calls == [(2, 3, 480, 640), (1, 3, 448, 640)] * 3
    # small never waited for a wide camera expected back soon (5 s each time it did)
    assert elapsed < 4.0, elapsed
    for c in cams:
        for tensor, out in zip(tensors[c], outputs[c], strict=True):
            alone = infer(tensor)
            assert out.shape == alone.shape and float(alone[0, 4].max()) == 1.0  # it found the box
            np.testing.assert_allclose(out, alone, rtol=0, atol=1e-4 * float(np.abs(alone).max()))


def test_dynamically_quantized_model_is_never_batched(tmp_path: Path, coco_model: Path) -> None:
    assert Detector(coco_model, device="cpu").batch_capacity(4) == 1  # fixed batch of one
    # with a dynamic batch, DynamicQuantizeLinear scales over the whole batch: cameras would change each other
    dyn = Detector(dynamic_batch_copy(coco_model, tmp_path / "int8_dyn.onnx"), device="cpu")
    assert dyn.batch_capacity(4) == 1


def _compete(weights: dict[str, float], frames: list[np.ndarray], total: int) -> dict[str, int]:
    det = Detector(TINY, device="cpu")
    sched = InferenceScheduler(det, max_batch=1, batch_wait_s=0.1)
    tensor = det.preprocess(frames[0])[0]
    done = threading.Event()
    for c, w in weights.items():
        sched.register(c, w)

    def camera(c: str) -> None:
        while not done.is_set():
            sched.infer(c, tensor)
            if sched.stats.frames >= total:
                done.set()
            time.sleep(0.001)  # tracking and counting
        sched.unregister(c)

    threads = [threading.Thread(target=camera, args=(c,)) for c in weights]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sched.close()
    return sched.stats.per_camera


def test_cameras_share_inference_by_weight(frames: list[np.ndarray]) -> None:
    equal = _compete({"a": 1, "b": 1}, frames, 120)
    assert 0.8 < equal["a"] / equal["b"] < 1.25, equal
    weighted = _compete({"a": 3, "b": 1}, frames, 160)
    assert 2.4 < weighted["a"] / weighted["b"] < 3.6, weighted


def test_thread_budget_defaults_follow_the_cores(coco_model: Path) -> None:
    model, perf = ModelConfig(path=coco_model, device="cpu"), PerformanceConfig()
    small = ThreadBudget.resolve(model, perf, cores=2)
    assert (small.streams, small.intra_op, small.inter_op, small.opencv, small.prepare, small.spinning) == (
        2, 1, 1, 1, 1, False)  # two single-threaded sessions side by side
    big = ThreadBudget.resolve(model, perf, cores=16)
    assert (big.streams, big.intra_op, big.opencv, big.prepare) == (2, 8, 4, 8)
    one_core = ThreadBudget.resolve(model, perf, cores=1)
    assert (one_core.streams, one_core.intra_op) == (1, 1)
    gpu = ThreadBudget.resolve(ModelConfig(path=coco_model, device="cuda"), perf, cores=8)
    assert (gpu.streams, gpu.intra_op) == (1, 8)  # the GPU schedules its own work: one session
    one = ThreadBudget.resolve(model, PerformanceConfig(streams=1), cores=2)
    assert (one.streams, one.intra_op) == (1, 2)
    set_ = ThreadBudget.resolve(ModelConfig(path=coco_model, threads=3),
                                PerformanceConfig(opencv_threads=0, prepare_threads=2, spinning=True), cores=16)
    assert (set_.intra_op, set_.opencv, set_.prepare, set_.spinning) == (3, 0, 2, True)


def test_default_batch_shares_the_cameras_out_over_the_streams() -> None:
    assert [default_batch(n, 1) for n in (1, 4, 8, 20)] == [1, 4, 8, 8]
    assert [default_batch(n, 2) for n in (1, 2, 3, 4, 8, 20)] == [1, 1, 2, 2, 4, 4]


def test_performance_section_is_validated(coco_model: Path) -> None:
    base = f"model: {{path: {coco_model}}}\ncameras: [{{id: a, source: 0, weight: 2}}]\n"
    cfg = parse_config(base + "performance: {max_batch: 4, prefetch: 1}\n", check_files=False)
    assert cfg.performance.max_batch == 4 and cfg.cameras[0].weight == 2
    with pytest.raises(ConfigError, match=r"performance.max_batchh: unknown key"):
        parse_config(base + "performance: {max_batchh: 4}\n", check_files=False)
    with pytest.raises(ConfigError, match=r"performance.prefetch: Input should be less than or equal to 16"):
        parse_config(base + "performance: {prefetch: 99}\n", check_files=False)


class _KeepMessages:
    """A publisher that keeps what it is given (the broker is not what these tests are about)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def publish(self, message: Message) -> Outgoing:
        self.messages.append(message)
        return Outgoing(len(self.messages), len(self.messages), message.topic, json.dumps(message.doc).encode(), 1,
                        False)

    def publish_latest(self, topic: str, doc: Any) -> None:
        pass

    def close(self, timeout: float = 30.0, abort: threading.Event | None = None) -> None:
        pass


def _run_camera(clip: Path, coco_model: Path, tmp_path: Path, scheduled: bool, downstream_s: float,
                streams: int = 1, spans: list[tuple[float, float]] | None = None,
                ) -> tuple[list[tuple[float, float]], list[float], list[dict[str, Any]]]:
    """A clip through a real camera pipeline whose downstream work takes ``downstream_s`` more.

    Returns the (start, end) of each frame's downstream work, the start of each inference, and
    the interval records published; ``spans`` (if given) gets each inference's (start, end).
    """
    cfg = parse_config(f"model: {{path: {coco_model}}}\nstatistics: {{interval_s: 1}}\nspool: {{dir: {tmp_path}}}\n"
                       f"cameras: [{{id: cam, source: {clip}, start_time: '2024-05-06T08:00:00Z',\n"
                       "  lines: [{id: east, p1: [560, 200], p2: [560, 420], in_side: left}]}]\n", check_files=False)
    det = Detector(coco_model, device="cpu")
    starts: list[float] = []
    infer = det.infer

    def timed_infer(tensor: np.ndarray, stream: int = 0) -> np.ndarray:
        t0 = time.monotonic()
        starts.append(t0)
        out = infer(tensor, stream)
        if spans is not None:
            spans.append((t0, time.monotonic()))
        return out

    det.infer = timed_infer  # type: ignore[method-assign]
    downstream: list[tuple[float, float]] = []

    class SlowDownstream(CameraPipeline):
        def _after_detect(self, *args: Any) -> None:
            t0 = time.monotonic()
            super()._after_detect(*args)
            time.sleep(downstream_s)
            downstream.append((t0, time.monotonic()))

    sched = InferenceScheduler(det, batch_wait_s=0.0, streams=streams) if scheduled else None
    pub = _KeepMessages()
    try:
        SlowDownstream(cfg.cameras[0], cfg, det, pub, scheduler=sched).run(threading.Event())
    finally:
        if sched is not None:
            sched.close()
    return downstream, starts, [m.doc for m in pub.messages if m.doc.get("schema") == STATS_SCHEMA]


def test_next_frame_is_inferred_while_the_previous_one_is_counted(vtest_video: Path, coco_model: Path,
                                                                   tmp_path: Path) -> None:
    """With the scheduler, frame n+1's inference starts before frame n's downstream work ends, and
    the records are the same as when every stage runs one after the other."""
    clip = make_clip(vtest_video, tmp_path / "vtest_60.avi", 60)  # three people cross the east line
    downstream, starts, records = _run_camera(clip, coco_model, tmp_path / "a", True, 0.05)
    assert len(downstream) == 60 and len(starts) == 60
    # frame k+1 was handed to inference while frame k was still being tracked and counted (serially: 0)
    overlapped = sum(starts[k + 1] < end for k, (_, end) in enumerate(downstream[:-1]))
    assert overlapped >= 53, (starts, downstream)
    _, _, serial = _run_camera(clip, coco_model, tmp_path / "b", False, 0.0)
    assert len(records) >= 2 and sum(ln[d]["total"] for r in records for ln in r["lines"] for d in ("in", "out")) > 0

    def same(r: dict[str, Any]) -> dict[str, Any]:  # inference times differ from run to run
        return {k: v for k, v in r.items() if k != "inference_ms_mean"}
    assert [same(r) for r in records] == [same(r) for r in serial]


def test_a_paced_file_camera_counts_each_frame_without_waiting_for_the_next(vtest_video: Path, coco_model: Path,
                                                                           tmp_path: Path) -> None:
    """A ``realtime`` file is read at its frame rate, so reading its next frame waits. The camera thread
    must not do that wait with frames in flight: each frame is counted about an inference after it
    was read, not a frame interval (here 0.5 s) later."""
    import cv2

    clip = tmp_path / "slow.avi"
    cap = cv2.VideoCapture(str(vtest_video))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 2.0, (768, 576))
    for _ in range(6):
        writer.write(cap.read()[1])
    writer.release()
    cap.release()
    cfg = parse_config(f"model: {{path: {coco_model}}}\nspool: {{dir: {tmp_path}}}\n"
                       f"cameras: [{{id: cam, source: {clip}, realtime: true, start_time: '2024-05-06T08:00:00Z',\n"
                       "  lines: [{id: east, p1: [560, 200], p2: [560, 420], in_side: left}]}]\n", check_files=False)
    assert cfg.performance.prefetch == 0
    det = Detector(coco_model, device="cpu")
    sched = InferenceScheduler(det, batch_wait_s=0.0, streams=2)
    try:
        pipe = CameraPipeline(cfg.cameras[0], cfg, det, _KeepMessages(), scheduler=sched)
        assert pipe.run(threading.Event()).frames == 6
    finally:
        sched.close()
    assert max(pipe.latency.frames) < 0.4, list(pipe.latency.frames)


def test_two_streams_infer_two_frames_of_one_camera_at_once_with_the_same_records(
        vtest_video: Path, coco_model: Path, tmp_path: Path) -> None:
    """performance.streams: 2: two sessions, a camera keeps two frames handed over; frames are
    still tracked and counted in order, so the records equal those of one stream."""
    clip = make_clip(vtest_video, tmp_path / "vtest_40.avi", 40)
    spans: list[tuple[float, float]] = []
    downstream, starts, records = _run_camera(clip, coco_model, tmp_path / "a", True, 0.0, streams=2, spans=spans)
    assert len(downstream) == 40 and len(spans) == 40
    spans.sort()
    # an inference started while the one before it was still running (one stream: never)
    side_by_side = sum(b0 < a1 for (_, a1), (b0, _) in zip(spans, spans[1:]))
    assert side_by_side >= 20, spans
    assert all(a[0] <= b[0] for a, b in zip(downstream, downstream[1:]))  # counted in frame order
    _, _, one = _run_camera(clip, coco_model, tmp_path / "b", True, 0.0, streams=1)

    def same(r: dict[str, Any]) -> dict[str, Any]:  # inference times differ from run to run
        return {k: v for k, v in r.items() if k != "inference_ms_mean"}
    assert len(records) >= 2 and [same(r) for r in records] == [same(r) for r in one]


def test_a_camera_may_not_have_more_frames_waiting_than_its_depth(coco_model: Path) -> None:
    det = Detector(coco_model, device="cpu")
    sched = InferenceScheduler(det, batch_wait_s=0.0, streams=2)
    try:
        assert len(det.sessions) == 2
        blank = np.zeros((1, 3, *det.input_size), np.float32)
        assert sched.depth == 3  # one more than the streams: a free stream finds the camera's next frame
        with sched._cond:  # hold the threads back so that nothing is taken while we submit
            tickets = [sched.submit("cam", blank) for _ in range(3)]
            with pytest.raises(RuntimeError, match="3 of its frames were still waiting"):
                sched.submit("cam", blank)
        for t in tickets:
            assert t.wait().output.shape[0] == 1
    finally:
        sched.close()


def _b_late(model: Path, max_batch: int, batch_wait_s: float) -> tuple[InferenceScheduler, np.ndarray]:
    """Two streams and cameras "a" and "b", where "b" has the next turn and usually comes back within the
    wait; and a blank input."""
    det = Detector(model, device="cpu")
    sched = InferenceScheduler(det, max_batch=max_batch, batch_wait_s=batch_wait_s, streams=2)
    assert sched.max_batch == max_batch
    sched.register("a")
    sched.register("b")
    with sched._cond:
        sched._pass["a"] = 1.0
        sched._back_s["b"] = 0.01
    return sched, np.zeros((1, 3, *det.input_size), np.float32)


def test_a_stream_that_waited_in_vain_for_a_batch_goes_back_to_waiting(tmp_path: Path) -> None:
    """Two streams both wait for a camera expected back soon to fill a batch; when the wait ends, one
    takes the waiting frame and the other must find nothing to run and wait again (it used to crash on
    an empty choice, found in a 4-camera, two-stream soak: the agent went on with one stream)."""
    sched, blank = _b_late(dynamic_batch_copy(TINY, tmp_path / "tiny_dyn.onnx"), max_batch=2, batch_wait_s=0.3)
    try:
        first = sched.submit("a", blank)
        assert first.wait().output.shape[0] == 1
        time.sleep(0.1)  # the other stream's wait has ended too
        assert all(t.is_alive() for t in sched._threads)
        assert [sched.submit(c, blank).wait().output.shape[0] for c in ("b", "a", "b")] == [1, 1, 1]
        assert sched.stats.frames == 4
    finally:
        sched.close()


def test_with_several_streams_no_stream_idles_for_a_late_camera_and_it_keeps_its_turn(coco_model: Path) -> None:
    """One frame per call and two streams: a frame waiting runs at once, even when another camera has
    the turn and usually comes back soon; that camera keeps the turn for when its frame arrives.

    With one stream a camera has one frame at a time, so there the scheduler waits for it, or its weight
    would mean nothing (``test_cameras_share_inference_by_weight``)."""
    sched, blank = _b_late(coco_model, max_batch=1, batch_wait_s=5.0)
    try:
        t0 = time.monotonic()
        assert [sched.submit("a", blank).wait().output.shape[0] for _ in range(2)] == [1, 1]
        assert time.monotonic() - t0 < 2.5  # 5 s per frame when the stream waited for "b"
        with sched._cond:
            assert sched._pass["a"] == 3.0 and sched._vtime == 0.0  # "b" has not lost its two turns
            sched._pass["a"], sched._pass["b"] = 10.0, -100.0       # "b" far behind
        sched.submit("a", blank).wait()
        with sched._cond:  # the turns kept are bounded: depth frames' worth behind the camera served
            assert sched._vtime == 10.0 - sched.depth
        with sched._cond:  # held, so that no stream takes the frame before the checks
            ticket = sched.submit("b", blank)
            assert sched._pass["b"] == sched._vtime
            assert sched._order(["a", "b"]) == ["b", "a"]  # with frames of both waiting, "b"'s run first
        assert ticket.wait().output.shape[0] == 1
    finally:
        sched.close()


@pytest.mark.parametrize("streams,max_batch", [(1, 1), (2, 2)])
def test_a_camera_that_goes_quiet_does_not_hold_up_the_others(tmp_path: Path, streams: int, max_batch: int) -> None:
    """A camera that usually comes back at once stops sending (a dead camera being retried with
    backoff stays registered): the others' frames wait for it once at most, not on every call."""
    det = Detector(dynamic_batch_copy(TINY, tmp_path / "tiny_dyn.onnx") if max_batch > 1 else TINY, device="cpu")
    sched = InferenceScheduler(det, max_batch=max_batch, batch_wait_s=1.0, streams=streams)
    assert sched.max_batch == max_batch
    blank = np.zeros((1, 3, *det.input_size), np.float32)
    try:
        sched.register("a")
        sched.register("quiet")
        for _ in range(5):  # both come back at once, so each is expected back within the wait
            tickets = [sched.submit(c, blank) for c in ("quiet", "a")]
            for t in tickets:
                t.wait()
        t0 = time.monotonic()
        for _ in range(20):
            sched.submit("a", blank).wait()
        assert time.monotonic() - t0 < 6.0  # 20 s when every frame waited for the quiet camera
        assert sched.stats.per_camera == {"a": 25, "quiet": 5}
    finally:
        sched.close()


def test_prefetcher_take_without_waiting(clip: Path, coco_model: Path) -> None:
    det = Detector(coco_model, device="cpu")
    source = VideoSource(CameraConfig(id="cam", source=str(clip)), threading.Event())
    feed = Prefetcher(source.frames(), det.preprocess, depth=2)
    seqs = []
    deadline = time.monotonic() + 30
    while not feed.exhausted and time.monotonic() < deadline:
        item = feed.take(wait=False)  # None: not prepared yet
        if item is not None and item.frame is not None:
            seqs.append(item.frame.seq)
    assert seqs == list(range(12)) and feed.take(wait=False) is None and feed.take() is None
    # without a thread a file's frames are read and prepared when taken, also without waiting
    inline = Prefetcher(VideoSource(CameraConfig(id="cam", source=str(clip)), threading.Event()).frames(),
                        det.preprocess, depth=0)
    taken = [inline.take(wait=False) for _ in range(12)]
    assert [i.frame.seq for i in taken if i is not None and i.frame is not None] == list(range(12))
    assert inline.take(wait=False) is None and inline.exhausted
    # a live source without a thread has nothing ready: its next read would wait for the camera
    live = Prefetcher(iter([]), det.preprocess, depth=0, newest_wins=True)
    assert live.take(wait=False) is None and not live.exhausted
