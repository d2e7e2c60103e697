"""One :class:`SegmentationPipeline` shared by many threads.

The rule under test: every in-flight call (``predict``, or a ``run`` stream
while it has frames in flight) owns one lane of engine slots from a pool of
``concurrency`` lanes; callers beyond the pool wait for a free lane. The
answers must be bitwise the sequential ones (boxes, scores, classes, every
mask pixel), whatever the interleaving.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import supervision as sv

from inference_accel.errors import InvalidArgumentError
from inference_accel.flags import Flags
from inference_accel.pipeline import SegmentationPipeline
from tests.helpers_onnx import write_tiny_seg_model

THREADS = 4
FRAMES = 20
THRESHOLD = 0.3
SIZES = [(90, 120), (64, 64), (120, 90), (200, 150), (37, 53), (150, 200), (81, 81), (45, 160), (160, 45), (128, 96)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(write_tiny_seg_model(tmp_path_factory.mktemp("cc") / "tiny.onnx", size=64, queries=10, classes=4))


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """20 crops of a real photograph, of 10 sizes: the tiny model's outputs follow the pixels."""
    import cv2
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(1)
    out = []
    for i in range(FRAMES):
        h, w = SIZES[i % len(SIZES)]
        y, x = rng.integers(0, 280, 2)
        crop = photo[y : y + 220, x : x + 220]
        out.append(np.ascontiguousarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)))
    return out


def make_pipeline(model: str, concurrency: int = 1, depth: int = 1) -> SegmentationPipeline:
    return SegmentationPipeline(
        model, flags=Flags(pipeline_depth=depth), threshold=THRESHOLD, build_response=False, concurrency=concurrency
    )


@pytest.fixture(scope="module")
def sequential(tiny_model, frames) -> list[sv.Detections]:
    pipeline = make_pipeline(tiny_model)
    return [pipeline.predict(f) for f in frames]


def differences(got: sv.Detections, want: sv.Detections) -> list[str]:
    """Bitwise differences: boxes and scores by their bytes, classes, every mask pixel."""
    if len(got) != len(want):
        return [f"{len(got)} detections, want {len(want)}"]
    problems = []
    for name in ("xyxy", "confidence", "class_id"):
        if np.asarray(getattr(got, name)).tobytes() != np.asarray(getattr(want, name)).tobytes():
            problems.append(f"{name} differs")
    dense_got, dense_want = got.mask.to_dense(), want.mask.to_dense()
    if dense_got.shape != dense_want.shape or not np.array_equal(dense_got, dense_want):
        problems.append("mask pixels differ")
    return problems


def test_the_frames_give_varied_answers(sequential):
    """Guard: a race would be visible (the answers depend on the frame)."""
    assert sum(len(d) for d in sequential) > 0
    keys = {(len(d), np.asarray(d.xyxy).tobytes()) for d in sequential}
    assert len(keys) > FRAMES // 2


@pytest.mark.parametrize("concurrency", [1, 4])
def test_threads_sharing_one_pipeline_get_the_sequential_answers(tiny_model, frames, sequential, concurrency):
    pipeline = make_pipeline(tiny_model, concurrency)
    start = threading.Barrier(THREADS)

    def client(offset: int) -> list[tuple[int, list[str]]]:
        start.wait()
        wrong = []
        for step in range(FRAMES):
            i = (offset * 5 + step) % FRAMES  # every thread in another order
            problems = differences(pipeline.predict(frames[i]), sequential[i])
            if problems:
                wrong.append((i, problems))
        return wrong

    with ThreadPoolExecutor(THREADS) as executor:
        wrong = [w for part in executor.map(client, range(THREADS)) for w in part]
    assert wrong == [], f"{len(wrong)} of {THREADS * FRAMES} concurrent calls differ: {wrong[:3]}"


@pytest.mark.parametrize("concurrency", [1, 2])
def test_concurrent_depth_2_streams_are_in_order_and_exact(tiny_model, frames, sequential, concurrency):
    pipeline = make_pipeline(tiny_model, concurrency, depth=2)

    def client(offset: int) -> list[str]:
        order = [(offset * 7 + k) % FRAMES for k in range(FRAMES)]
        problems = []
        for position, result in enumerate(pipeline.run(frames[i] for i in order)):
            if result.index != position:
                problems.append(f"result {result.index} at position {position}")
            problems += differences(result.detections, sequential[order[position]])
        return problems

    with ThreadPoolExecutor(3) as executor:
        problems = [p for part in executor.map(client, range(3)) for p in part]
    assert problems == []


class SlotProbe:
    """Wraps ``engine.run``: records which slots are in use at once."""

    def __init__(self, engine, barrier: threading.Barrier | None = None):
        self.real = engine.run
        self.barrier = barrier
        self.lock = threading.Lock()
        self.active: set[int] = set()
        self.most = 0
        self.overlaps: list[int] = []  # slot found already in use (two calls on one slot)
        engine.run = self

    def __call__(self, slot: int = 0):
        with self.lock:
            if slot in self.active:
                self.overlaps.append(slot)
            self.active.add(slot)
            self.most = max(self.most, len(self.active))
        try:
            if self.barrier is not None:
                self.barrier.wait()
            return self.real(slot)
        finally:
            with self.lock:
                self.active.discard(slot)


def test_each_in_flight_call_owns_a_slot(tiny_model, frames):
    """Four calls reach the engine at the same time (a barrier holds them), each on its own slot."""
    pipeline = make_pipeline(tiny_model, concurrency=THREADS)
    assert len(pipeline.engine.slots) == THREADS
    probe = SlotProbe(pipeline.engine, threading.Barrier(THREADS, timeout=30))
    with ThreadPoolExecutor(THREADS) as executor:
        list(executor.map(pipeline.predict, frames[:THREADS]))
    assert probe.overlaps == [] and probe.most == THREADS


def test_calls_beyond_the_pool_wait_for_a_lane(tiny_model, frames, sequential):
    pipeline = make_pipeline(tiny_model, concurrency=2)
    probe = SlotProbe(pipeline.engine)
    with ThreadPoolExecutor(THREADS) as executor:
        got = list(executor.map(pipeline.predict, frames))
    assert probe.overlaps == [] and probe.most <= 2
    assert all(not differences(g, w) for g, w in zip(got, sequential))


def test_depth_2_gives_each_lane_two_slots(tiny_model):
    pipeline = make_pipeline(tiny_model, concurrency=3, depth=2)
    assert len(pipeline.engine.slots) == 6 and pipeline.concurrency == 3


def test_predict_inside_a_depth_1_stream_works(tiny_model, frames, sequential):
    """At depth 1 a stream holds no lane while its consumer runs: nested calls are fine."""
    pipeline = make_pipeline(tiny_model)
    for result in pipeline.run(frames[:3]):
        assert not differences(pipeline.predict(frames[5]), sequential[5])
        assert not differences(result.detections, sequential[result.index])


def test_a_call_that_would_wait_for_its_own_lane_is_refused(tiny_model, frames):
    """Depth 2 holds the lane between frames; a nested call from the same thread would wait forever."""
    pipeline = make_pipeline(tiny_model, depth=2)
    stream = pipeline.run(frames[:4])
    next(stream)
    with pytest.raises(RuntimeError, match="concurrency"):
        pipeline.predict(frames[0])
    stream.close()
    pipeline.predict(frames[0])  # closing the stream gave the lane back


def test_an_abandoned_stream_gives_its_lane_back(tiny_model, frames):
    pipeline = make_pipeline(tiny_model, depth=2)
    for _ in pipeline.run(frames[:4]):
        break
    pipeline.predict(frames[0])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_concurrency_must_be_a_positive_int(tiny_model, bad):
    with pytest.raises(InvalidArgumentError, match="concurrency"):
        make_pipeline(tiny_model, concurrency=bad)
