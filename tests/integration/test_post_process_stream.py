"""Our post_process runs where stock's does: on the model's post-processing stream, after the outputs exist.

With inference-models' depth-2 pipeline a TRT model hands its outputs to
``post_process`` before the engine has finished (``_trt_produce_event`` on
the first output) and reuses its graph's output buffers once the
``consumer_done_event`` of the graph state has passed. Stock's
``post_process`` waits for the one and records the other on
``_post_process_stream``; ours must do the same, or it would read outputs
still being written. No GPU here: streams, events and CUDA tensors are
stand-ins that log what is done to them, in order.
"""

from __future__ import annotations

import contextlib
import types

import pytest
import torch


class Log(list):
    def add(self, *entry):
        self.append(entry)


class FakeStream:
    def __init__(self, log):
        self.log = log

    def wait_event(self, event):
        self.log.add("wait", event.name)

    def synchronize(self):
        self.log.add("synchronize")


class FakeEvent:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def record(self, stream):
        self.log.add("record", self.name)


class FakeCudaOutput:
    """What a TRT output looks like to the scope: ``is_cuda``, ``record_stream``, the pipeline's attributes."""

    is_cuda = True

    def __init__(self, log, name):
        self.log, self.name = log, name

    def record_stream(self, stream):
        self.log.add("record_stream", self.name)


@pytest.fixture
def scope(monkeypatch):
    from inference_accel.integrations import inference_models as im

    log = Log()

    @contextlib.contextmanager
    def use_cuda_stream(stream):
        log.add("enter", stream is not None)
        yield
        log.add("exit")

    monkeypatch.setattr(im, "_stock", lambda: types.SimpleNamespace(use_cuda_stream=use_cuda_stream))
    return im._post_process_scope, log  # noqa: SLF001


def test_pipeline_outputs_are_waited_for_marked_and_released(scope):
    post_process_scope, log = scope
    outputs = [FakeCudaOutput(log, name) for name in ("boxes", "logits", "masks")]
    outputs[0]._trt_produce_event = FakeEvent(log, "produced")
    outputs[0]._trt_graph_state = types.SimpleNamespace(consumer_done_event=FakeEvent(log, "consumed"))
    model = types.SimpleNamespace(_post_process_stream=FakeStream(log))
    with post_process_scope(model, outputs):
        log.add("work")
    assert log == [
        ("enter", True),
        ("wait", "produced"),
        ("record_stream", "boxes"),
        ("record_stream", "logits"),
        ("record_stream", "masks"),
        ("work",),
        ("record", "consumed"),
        ("exit",),
        ("synchronize",),
    ]


def test_without_a_pipeline_the_stream_is_still_used_and_synchronised(scope):
    post_process_scope, log = scope
    outputs = [FakeCudaOutput(log, name) for name in ("boxes", "logits", "masks")]
    model = types.SimpleNamespace(_post_process_stream=FakeStream(log))
    with post_process_scope(model, outputs):
        log.add("work")
    assert [e[0] for e in log] == ["enter", "record_stream", "record_stream", "record_stream", "work", "exit", "synchronize"]


def test_cpu_outputs_touch_no_stream(scope):
    post_process_scope, log = scope
    model = types.SimpleNamespace(_post_process_stream=FakeStream(log))
    with post_process_scope(model, (torch.zeros(1), torch.zeros(1), torch.zeros(1))):
        log.add("work")
    assert log == [("work",)]
