"""Keeping inference busy: thread budgets, per-camera prefetch and one shared inference scheduler.

Inference is the cost of the box; everything else should hide behind it.

* :class:`ThreadBudget` turns the ``performance`` section and the number of usable cores into
  thread counts for ONNX Runtime, OpenCV and our own preparation threads.
* :class:`Prefetcher` gives a camera its frames letterboxed. A live camera's newest frame is
  prepared in a thread of its own, and every frame replaced before it was taken is counted as
  dropped. A file camera's frames are read and prepared by the camera's own thread as it takes
  them (every frame, in order), or, with ``performance.prefetch``, ahead into a small bounded
  queue by a thread of their own.
* :class:`InferenceScheduler` owns the detector's session: camera threads hand it prepared
  tensors, it gathers at most one frame per camera, runs them in one batched ``session.run``
  when the model allows it, and hands each camera its own output. A batch holds tensors of one
  shape only: with rect input shapes (a dynamic-shape model) cameras of different frame sizes give
  different shapes, and wait for separate calls. Cameras share it by weight
  (stride scheduling): while several cameras have frames waiting, a camera of weight 2 gets
  twice the frames of one of weight 1; a camera that is idle builds up no credit. With one
  frame per call and several streams, a stream runs the frames waiting instead of waiting for a
  camera whose turn it is; that camera keeps the turns it missed (a bounded credit). A camera
  that has gone quiet (no frame being inferred, no result for the batch wait) is not waited for. A camera
  submits its next frame as soon as the previous output is back and post-processes that output
  while the next frame is inferred. With ``performance.streams`` > 1 the scheduler runs that many
  sessions side by side, one thread each, and a camera keeps streams + 1 frames handed over.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from edge_agent.config import ModelConfig, PerformanceConfig
from edge_agent.types import Frame

if TYPE_CHECKING:
    from edge_agent.detection import Detector, Letterbox


MAX_DEFAULT_BATCH = 8


def default_batch(cameras: int, streams: int) -> int:
    """Frames per inference call when ``performance.max_batch`` is not set: the cameras shared out
    over the streams (a batch takes one frame of each camera), at most :data:`MAX_DEFAULT_BATCH`.

    Each stream running a batch of every camera made the two streams wait for the same cameras:
    with the fp32 model at 2 streams, 4 cameras did 22.54 frames/s in batches of 4 and 24.35 in
    batches of 2, 8 cameras 19.97 in batches of 8 and 23.44 in batches of 4
    (``scripts/bench_pipeline.py --model ... --cameras 4 --max-batch 2``, 2026-11-29).
    """
    return -(-min(max(cameras, 1), MAX_DEFAULT_BATCH) // max(streams, 1))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_streams(device: str, cores: int) -> int:
    """Inference streams when ``performance.streams`` is unset: 2 on a CPU of 2 or more cores, else 1.

    On this project's 2-core box two single-threaded sessions inferred 1.30-1.66x the frames/s of
    one two-threaded session without spinning, and 1.29-1.55x ONNX Runtime's spinning defaults
    (``scripts/bench_streams.py``; the whole agent: ``scripts/bench_pipeline.py``; README,
    Performance). A GPU or OpenVINO provider schedules its own work and would hold one copy of the
    model per stream, so it keeps one.
    """
    if cores < 2:
        return 1
    if device == "auto":
        from edge_agent.detection.detector import choose_providers

        return 2 if choose_providers("auto")[0] == "CPUExecutionProvider" else 1
    return 2 if device == "cpu" else 1


@dataclass(frozen=True)
class ThreadBudget:
    """Resolved thread counts.

    Attributes:
        cores: usable cores the defaults were derived from.
        intra_op: ONNX Runtime intra-op threads (all cores by default: inference is the main cost).
        inter_op: ONNX Runtime inter-op threads.
        spinning: whether ONNX Runtime threads busy-wait between operators.
        opencv: ``cv2.setNumThreads`` value.
        prepare: frames decoded into tensors (letterboxed) at once over all cameras.
        streams: ONNX Runtime sessions running frames side by side (``intra_op`` threads each).
    """

    cores: int
    intra_op: int
    inter_op: int
    spinning: bool
    opencv: int
    prepare: int
    streams: int = 1

    @classmethod
    def resolve(cls, model: ModelConfig, perf: PerformanceConfig, cores: int | None = None) -> ThreadBudget:
        """Thread counts from the configuration; unset ones derive from ``cores`` (default: usable cores)."""
        n = cores or usable_cores()
        streams = perf.streams or default_streams(model.device, n)
        return cls(
            cores=n,
            intra_op=model.threads or max(1, n // streams),
            inter_op=perf.inter_op_threads,
            spinning=perf.spinning,
            opencv=perf.opencv_threads if perf.opencv_threads is not None else (1 if n <= 4 else n // 4),
            prepare=perf.prepare_threads or max(1, n // 2),
            streams=streams,
        )

    def apply_opencv(self) -> None:
        """Set OpenCV's own thread pool size (process-wide)."""
        import cv2

        cv2.setNumThreads(self.opencv)

    def describe(self) -> str:
        streams = f"{self.streams} streams x " if self.streams > 1 else ""
        return (f"{self.cores} cores: ONNX Runtime {streams}{self.intra_op} intra-op / {self.inter_op} inter-op "
                f"threads{' spinning' if self.spinning else ''}, OpenCV {self.opencv}, {self.prepare} preparing "
                f"at once")


# ----------------------------------------------------------------------------- prefetch
@dataclass(frozen=True)
class Prepared:
    """A frame ready for inference, or a live source's heartbeat (``frame`` None: no frame for a while).

    Attributes:
        frame: the frame, or None for a heartbeat.
        dropped: frames dropped since the previous prepared frame (fps cap, overload, replaced).
        tensor: (1, 3, H, W) network input; None for a heartbeat or when preparing failed.
        letterbox: how the frame was fitted into the network input.
        captured: wall-clock time (``time.time()``) the frame was captured (live) or read (file).
        error: why the frame could not be prepared (the frame is then skipped and counted).
    """

    frame: Frame | None
    dropped: int = 0
    tensor: npt.NDArray[np.floating] | None = None
    letterbox: Letterbox | None = None
    captured: float = 0.0
    error: str | None = None


Prepare = Callable[[npt.NDArray[np.uint8]], "tuple[npt.NDArray[np.floating], Letterbox]"]


class Prefetcher:
    """Reads and prepares a camera's frames for inference: ahead in a thread of its own, or when taken.

    Without a thread, the caller of :meth:`take` reads and prepares each frame itself. On a box
    whose cores inference keeps busy that is the cheaper way for a file: one busy thread fewer.
    With the int8 model on vtest, the agent's CPU per frame fell from 87.2-88.3 ms to 86.3-87.0 ms
    (``scripts/bench_pipeline.py --prefetch 2`` against ``--prefetch 0``).

    Args:
        frames: the source's ``(frame or None, dropped)`` iterator (see ``VideoSource.frames``).
        prepare: image -> (tensor, letterbox), e.g. ``Detector.preprocess``.
        depth: frames prepared ahead in a thread (0: no thread; frames are read and prepared when
            taken, also without waiting: for a file read as fast as it decodes, whose reads do not wait).
        newest_wins: live source: hold one prepared frame and replace it by a newer one, counting
            the replaced frame as dropped, instead of waiting for room.
        on_drop: called with the number of frames replaced (for the source's counters).
        slots: shared bound on frames being prepared at once over all cameras.
        live_clock: frame timestamps are wall-clock capture times (live sources).
        name: thread name.
    """

    def __init__(self, frames: Iterator[tuple[Frame | None, int]], prepare: Prepare, depth: int = 2,
                 newest_wins: bool = False, on_drop: Callable[[int], None] | None = None,
                 slots: threading.Semaphore | None = None, live_clock: bool = False, name: str = "prefetch"):
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self._frames = frames
        self._prepare_fn = prepare
        self.depth = 1 if newest_wins and depth else depth
        self.newest_wins = newest_wins
        self._on_drop = on_drop
        self._slots = slots
        self._live_clock = live_clock
        self._queue: deque[Prepared] = deque()
        self._cond = threading.Condition()
        self._ended = False
        self._closed = False
        self._error: BaseException | None = None
        self.replaced = 0
        self._thread: threading.Thread | None = None
        if self.depth:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _prepare(self, frame: Frame | None, dropped: int) -> Prepared:
        if frame is None:
            return Prepared(None, dropped)
        captured = frame.ts if self._live_clock else time.time()
        try:
            if self._slots is None:
                tensor, lb = self._prepare_fn(frame.image)
            else:
                with self._slots:
                    tensor, lb = self._prepare_fn(frame.image)
        except ValueError as exc:  # a frame the detector refuses: skipped and counted downstream
            return Prepared(frame, dropped, captured=captured, error=str(exc))
        return Prepared(frame, dropped, tensor, lb, captured)

    def _put(self, item: Prepared) -> None:
        with self._cond:
            if self.newest_wins:
                if item.frame is None and self._queue:
                    return  # a heartbeat is only needed while nothing else is waiting
                replaced = 0
                while len(self._queue) >= self.depth:
                    old = self._queue.popleft()
                    if old.frame is not None:
                        replaced += 1
                        item = Prepared(item.frame, item.dropped + old.dropped + 1, item.tensor, item.letterbox,
                                        item.captured, item.error)
                if replaced:
                    self.replaced += replaced
                    if self._on_drop is not None:
                        self._on_drop(replaced)
            else:
                while len(self._queue) >= self.depth and not self._closed:
                    self._cond.wait(0.5)
                if self._closed:
                    return
            self._queue.append(item)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            for frame, dropped in self._frames:
                if self._closed:
                    break
                self._put(self._prepare(frame, dropped))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._error = exc
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()  # a generator releases its capture
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def take(self, wait: bool = True) -> Prepared | None:
        """The next prepared frame (for a live source: the newest); re-raises the source's error at its end.

        Args:
            wait: block until a frame is prepared or the source has ended. Without waiting, None
                also means that no frame is prepared yet (a live source without a thread never has
                one ready: its next read waits for the camera); ``exhausted`` tells the two apart.

        Returns:
            The frame, or None: the source has ended (or, without ``wait``, nothing is ready yet).
        """
        if self._thread is None:
            if not wait and self.newest_wins:
                return None  # a live source without a thread would block until its next frame arrives
            for frame, dropped in self._frames:  # a file's next frame is read at once: prepared here
                return self._prepare(frame, dropped)
            self._ended = True
            return None
        with self._cond:
            while wait and not self._queue and not self._ended:
                self._cond.wait()
            if self._queue:
                item = self._queue.popleft()
                self._cond.notify_all()
                return item
            ended = self._ended
        if ended and self._error is not None:
            raise self._error
        return None

    @property
    def exhausted(self) -> bool:
        """The source has ended and every prepared frame has been taken."""
        with self._cond:
            return self._ended and not self._queue

    def __iter__(self) -> Iterator[Prepared]:
        """Prepared frames in order (for a live source: the newest each time); re-raises the source's error."""
        while (item := self.take()) is not None:
            yield item

    def close(self, timeout: float = 5.0) -> None:
        """Stop reading ahead and wait for the thread (the source itself is stopped by its stop event)."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


# ----------------------------------------------------------------------------- shared inference
@dataclass(frozen=True)
class Inferred:
    """One camera's share of an inference call.

    Attributes:
        output: the model's first output for this frame, batch of one.
        ms: this frame's share of the call's time (call time / frames in it).
        batch: frames in the call.
    """

    output: npt.NDArray[np.floating]
    ms: float
    batch: int


@dataclass
class Ticket:
    """A frame handed to the scheduler; :meth:`wait` gives its output."""

    camera: str
    tensor: npt.NDArray[np.floating]
    arrived: float
    done: threading.Event = field(default_factory=threading.Event)
    result: Inferred | None = None
    error: BaseException | None = None

    def wait(self) -> Inferred:
        """Block until the frame's batch has run.

        Raises:
            Exception: whatever ONNX Runtime raised for the batch.
        """
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass
class SchedulerStats:
    """What the scheduler did: calls, frames, time in ``session.run`` and frames per camera."""

    calls: int = 0
    frames: int = 0
    busy_s: float = 0.0
    per_camera: dict[str, int] = field(default_factory=dict)

    @property
    def mean_batch(self) -> float:
        return self.frames / self.calls if self.calls else 0.0


class InferenceScheduler:
    """Inference threads for all cameras: gather their frames, batch them, share fairly by weight.

    A batch takes the frames of the cameras whose turn it is that have the tensor shape of the first
    of them; with rect input shapes a camera of another frame size waits for the next call.

    Args:
        detector: the shared detector (its sessions are only run by this scheduler's threads).
        max_batch: frames per call at most; reduced to 1 when the model cannot batch (see
            ``Detector.batch_capacity``).
        batch_wait_s: how long a batch waits for cameras that have no frame waiting yet.
        prepare_threads: frames the cameras' prefetchers prepare at once (None: no bound).
        streams: inference threads, each with its own session of the model; a camera may have
            this many frames waiting or running at once (see ``performance.streams``).
    """

    def __init__(self, detector: Detector, max_batch: int = 1, batch_wait_s: float = 0.05,
                 prepare_threads: int | None = None, streams: int = 1):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if batch_wait_s < 0:
            raise ValueError(f"batch_wait_s must be >= 0, got {batch_wait_s}")
        if streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        detector.open_streams(streams)
        self.detector = detector
        self.streams = streams
        # frames a camera keeps handed over: with several streams one more than streams, so that a
        # stream that finishes finds the camera's next frame waiting instead of waiting for the camera
        self.depth = streams + 1 if streams > 1 else 1
        self.max_batch = detector.batch_capacity(max_batch)
        self.batch_wait_s = batch_wait_s
        self.prepare_slots = threading.BoundedSemaphore(prepare_threads) if prepare_threads else None
        self.stats = SchedulerStats()
        self._cond = threading.Condition()
        self._pending: dict[str, deque[Ticket]] = {}  # cameras with frames waiting, oldest first
        self._stride: dict[str, float] = {}   # 1 / weight of each active camera
        self._pass: dict[str, float] = {}     # virtual time each camera has used
        self._vtime = 0.0
        self._served: dict[str, float] = {}   # when each camera last got its result (monotonic)
        self._running: dict[str, int] = {}    # frames of each camera being inferred now
        self._shapes: dict[str, tuple[int, ...]] = {}  # tensor shape of each camera's last frame
        self._back_s: dict[str, float] = {}   # how soon each camera comes back with its next frame (EWMA)
        self._free_since = time.monotonic()   # when the last call ended
        self._closed = False
        self._threads = [threading.Thread(target=self._run, args=(i,), name=f"inference-{i}", daemon=True)
                         for i in range(streams)]
        for t in self._threads:
            t.start()

    @classmethod
    def from_config(cls, detector: Detector, perf: PerformanceConfig, cameras: int,
                    budget: ThreadBudget) -> InferenceScheduler:
        """The scheduler for ``cameras`` cameras as the ``performance`` section asks."""
        wanted = perf.max_batch or default_batch(cameras, budget.streams)
        return cls(detector, wanted, perf.batch_wait_ms / 1000, budget.prepare, budget.streams)

    # -------------------------------------------------------------- cameras
    def register(self, camera: str, weight: float = 1.0) -> None:
        """A camera starts taking part; ``weight`` is its share while cameras compete."""
        if weight <= 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        with self._cond:
            self._stride[camera] = 1.0 / weight
            self._pass[camera] = max(self._pass.get(camera, 0.0), self._vtime)

    def unregister(self, camera: str) -> None:
        """A camera has stopped: batches no longer wait for it."""
        with self._cond:
            self._stride.pop(camera, None)
            self._cond.notify_all()

    def submit(self, camera: str, tensor: npt.NDArray[np.floating]) -> Ticket:
        """Hand over one camera's frame and return at once; the ticket's ``wait`` gives the output.

        A camera has at most ``depth`` frames waiting: with one stream it submits its next frame
        once the previous one's output is back, and then post-processes the previous frame while
        the next one is inferred; with ``streams`` > 1 it keeps ``streams`` + 1 frames handed over.

        Raises:
            RuntimeError: the scheduler is closed, or the camera already has ``depth`` frames waiting.
        """
        req = Ticket(camera, tensor, time.monotonic())
        with self._cond:
            if self._closed:
                raise RuntimeError("inference scheduler is closed")
            waiting = self._pending.get(camera)
            if waiting is not None and len(waiting) >= self.depth:
                raise RuntimeError(f"camera {camera} submitted a frame while {len(waiting)} of its frames were "
                                   f"still waiting (at most {self.depth} with {self.streams} stream(s))")
            if camera not in self._stride:
                self._stride[camera] = 1.0
            self._pass[camera] = max(self._pass.get(camera, 0.0), self._vtime)  # no credit for idle time
            if camera in self._served:
                gap = max(req.arrived - self._served[camera], 0.0)
                self._back_s[camera] = 0.7 * self._back_s.get(camera, gap) + 0.3 * gap
            self._pending.setdefault(camera, deque()).append(req)
            self._shapes[camera] = tensor.shape
            self._cond.notify_all()
        return req

    def infer(self, camera: str, tensor: npt.NDArray[np.floating]) -> Inferred:
        """Run one camera's frame (blocks until its batch has run).

        Raises:
            RuntimeError: the scheduler is closed.
            Exception: whatever ONNX Runtime raised for the batch.
        """
        return self.submit(camera, tensor).wait()

    # -------------------------------------------------------------- the thread
    def _order(self, cameras: list[str]) -> list[str]:
        """Cameras whose turn it is, least virtual time first.

        With equal weights every camera's turn (one frame each at most, so none gets ahead while
        the others wait); otherwise those within one stride of the least virtual time.
        """
        ranked = sorted(cameras, key=lambda c: max(self._pass.get(c, 0.0), self._vtime))
        strides = {self._stride.get(c, 1.0) for c in ranked}
        if len(strides) == 1:
            return ranked
        least = max(self._pass.get(ranked[0], 0.0), self._vtime)
        return [c for c in ranked if max(self._pass.get(c, 0.0), self._vtime) < least + min(strides) - 1e-12]

    def _shape(self, camera: str) -> tuple[int, ...] | None:
        """Tensor shape of the camera's next frame: its oldest waiting one, else the last it submitted."""
        waiting = self._pending.get(camera)
        return waiting[0].tensor.shape if waiting else self._shapes.get(camera)

    def _batchable(self, cameras: list[str]) -> list[str]:
        """Those of ``cameras`` (in turn order) whose frames may run together: the first one's shape, at most
        ``max_batch``. One batch is one tensor; the others wait for a later call."""
        shape = self._shape(cameras[0])
        return [c for c in cameras if self._shape(c) == shape][:self.max_batch]

    def _choose(self) -> list[Ticket]:
        """Waiting requests to run now (their cameras' turn, one tensor shape), at most ``max_batch``."""
        chosen = []
        for c in self._batchable(self._order(list(self._pending))):  # at most one frame of each camera
            waiting = self._pending[c]
            chosen.append(waiting.popleft())
            if not waiting:
                del self._pending[c]
        least = min(self._pass[r.camera] for r in chosen)
        if self._work_conserving():
            # a camera expected back soon keeps the turns it missed meanwhile (at most depth frames' worth):
            # it is served first when its frame arrives, instead of a stream idling until then
            served = {r.camera for r in chosen}
            back = [self._pass[c] for c in self._soon() if c not in served]
            if back:
                least = max(min(least, min(back)), least - self.depth * max(self._stride.values(), default=1.0))
        self._vtime = max(self._vtime, least)
        for r in chosen:
            self._pass[r.camera] += self._stride.get(r.camera, 1.0)
            self._running[r.camera] = self._running.get(r.camera, 0) + 1
        return chosen

    def _soon(self, now: float | None = None) -> list[str]:
        """Cameras with no frame waiting that usually come back within the batch wait.

        With ``now``, only those that also have a frame being inferred or got their last result no
        longer than the batch wait before: one that has gone quiet (a dead camera being retried) is not
        waited for, or every call would wait for it.
        """
        soon = [c for c in self._stride if c not in self._pending
                and self._back_s.get(c, float("inf")) <= self.batch_wait_s]
        if now is None:
            return soon
        since = now - self.batch_wait_s
        return [c for c in soon if self._running.get(c, 0) > 0 or self._served.get(c, since) >= since]

    def _work_conserving(self) -> bool:
        """Whether a stream runs the frames waiting rather than wait for a camera whose turn it is.

        Only with one frame per call and several streams: there a camera that keeps up always has a
        frame waiting (it keeps streams + 1 handed over), so one that does not is held back by its own
        thread, and a stream waiting for it would idle while every camera's frames wait behind it. With
        one stream a camera has one frame at a time, and waiting is what gives a weight its share.
        """
        return self.max_batch == 1 and self.streams > 1

    def _missing(self) -> bool:
        """A camera whose turn it is has no frame waiting yet but usually comes back within the wait."""
        if self._work_conserving():
            return False
        soon = self._soon(time.monotonic())
        if not soon:
            return False
        turn = self._batchable(self._order(list(self._pending) + soon))
        return any(c not in self._pending for c in turn)

    def _gather(self) -> list[Ticket] | None:
        """Wait for requests; then, up to ``batch_wait_s``, for cameras that fill the batch or whose turn it is."""
        with self._cond:
            while True:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return None
                # frames that arrived while the previous call ran wait from its end, not from their arrival
                start = max(min(q[0].arrived for q in self._pending.values()), self._free_since)
                deadline = start + self.batch_wait_s
                while not self._closed and self._missing():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._pending:  # another stream may have taken them while this one waited
                    return self._choose()

    def _run(self, stream: int) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            t0 = time.perf_counter()
            try:  # an error (even in joining the batch) goes to the cameras waiting; the thread goes on
                tensor = batch[0].tensor if len(batch) == 1 else np.concatenate([r.tensor for r in batch])
                out = self.detector.infer(tensor, stream)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting camera
                with self._cond:
                    for r in batch:
                        self._running[r.camera] -= 1
                for r in batch:
                    r.error = exc
                    r.done.set()
                continue
            dt = time.perf_counter() - t0
            st = self.stats
            now = time.monotonic()
            with self._cond:
                st.calls += 1
                st.frames += len(batch)
                st.busy_s += dt
                self._free_since = now
                for r in batch:
                    self._served[r.camera] = now
                    self._running[r.camera] -= 1
                    st.per_camera[r.camera] = st.per_camera.get(r.camera, 0) + 1
            for i, r in enumerate(batch):
                r.result = Inferred(out[i:i + 1], dt * 1000 / len(batch), len(batch))
                r.done.set()

    def close(self) -> None:
        """Finish the waiting requests, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=10)


# ----------------------------------------------------------------------------- latency
class LatencyLog:
    """Recent capture -> counted latencies of one camera (seconds), bounded.

    Args:
        size: latencies kept (the oldest are forgotten).
    """

    def __init__(self, size: int = 10_000):
        self.frames: deque[float] = deque(maxlen=size)
        self.crossings: deque[float] = deque(maxlen=size)
        self.count = 0  # frames processed, all told

    def add(self, seconds: float, crossing: bool) -> None:
        """One frame fully processed ``seconds`` after capture; ``crossing``: it completed a line crossing."""
        self.count += 1
        self.frames.append(seconds)
        if crossing:
            self.crossings.append(seconds)

    @staticmethod
    def percentiles(values: deque[float] | list[float], qs: tuple[float, ...] = (50, 95)) -> list[float]:
        """Percentiles in milliseconds (NaN when there is no value)."""
        if not values:
            return [float("nan")] * len(qs)
        return [float(v) * 1000 for v in np.percentile(np.asarray(values), qs)]


__all__ = ["InferenceScheduler", "Inferred", "LatencyLog", "Prefetcher", "Prepared", "SchedulerStats",
           "ThreadBudget", "Ticket", "default_streams", "usable_cores"]
