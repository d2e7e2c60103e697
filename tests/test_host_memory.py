"""Zero-copy host frames on an integrated GPU: the decision and the fallback, on the CPU.

What only a Jetson can show (the kernel reading mapped pinned memory, and
its speed) is in ``parity/gpu_selfcheck.py``; the frame graph's zero-copy
data flow is tested in ``tests/test_frame_graph.py``.
"""

from __future__ import annotations

import logging
import threading
import types

import pytest
import torch

from inference_accel import host_memory
from inference_accel.errors import FlagValueError
from inference_accel.host_memory import ZERO_COPY_FLAG, read_zero_copy_setting, zero_copy_reason_for


@pytest.fixture(autouse=True)
def fresh_decisions():
    host_memory.reset()
    yield
    host_memory.reset()


@pytest.mark.parametrize("raw, expected", [("", "auto"), ("AUTO", "auto"), (" on ", "on"), ("off", "off")])
def test_setting_values(raw, expected):
    assert read_zero_copy_setting({ZERO_COPY_FLAG: raw}) == expected


@pytest.mark.parametrize("raw", ["yes", "1", "zero", "true"])
def test_a_malformed_setting_is_an_error_naming_the_flag(raw):
    with pytest.raises(FlagValueError, match=ZERO_COPY_FLAG):
        read_zero_copy_setting({ZERO_COPY_FLAG: raw})


@pytest.mark.parametrize(
    "integrated, setting, pointer, expected",
    [
        (True, "auto", None, None),
        (True, "on", None, None),
        (True, "off", None, f"{ZERO_COPY_FLAG}=off"),
        (False, "off", None, f"{ZERO_COPY_FLAG}=off"),
        (False, "auto", None, "discrete GPU: the frame is copied"),
        (None, "auto", None, "this torch does not report is_integrated"),
        (True, "auto", "CUresult 1", "not mapped for the GPU (CUresult 1)"),
        (True, "on", "CUresult 1", "not mapped for the GPU (CUresult 1)"),
    ],
)
def test_the_rule(integrated, setting, pointer, expected):
    reason = zero_copy_reason_for(is_integrated=integrated, setting=setting, mapped_pointer_reason=pointer)
    if expected is None:
        assert reason is None
    else:
        assert expected in reason


@pytest.mark.parametrize("integrated", [False, None])
def test_on_is_refused_without_an_integrated_gpu(integrated):
    with pytest.raises(FlagValueError, match="needs an integrated GPU"):
        zero_copy_reason_for(is_integrated=integrated, setting="on", mapped_pointer_reason=None)


def fake_device(monkeypatch, *, integrated, pointer_reason=None):
    probes = []
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda device: types.SimpleNamespace(is_integrated=integrated)
    )
    monkeypatch.setattr(host_memory, "mapped_pointer_reason", lambda device: probes.append(device) or pointer_reason)
    return probes


def test_an_integrated_device_reads_frames_in_place_and_is_probed_once(monkeypatch):
    monkeypatch.delenv(ZERO_COPY_FLAG, raising=False)
    probes = fake_device(monkeypatch, integrated=True)
    device = torch.device("cuda", 0)
    assert host_memory.zero_copy_reason(device) is None
    assert host_memory.zero_copy_reason(device) is None
    assert len(probes) == 1  # the driver probe runs once per device


def test_a_discrete_device_copies_without_probing(monkeypatch):
    monkeypatch.delenv(ZERO_COPY_FLAG, raising=False)
    probes = fake_device(monkeypatch, integrated=False)
    assert "discrete GPU" in host_memory.zero_copy_reason(torch.device("cuda", 0))
    assert probes == []


def test_off_is_honoured_on_an_integrated_device(monkeypatch):
    monkeypatch.setenv(ZERO_COPY_FLAG, "off")
    fake_device(monkeypatch, integrated=True)
    assert host_memory.zero_copy_reason(torch.device("cuda", 0)) == f"{ZERO_COPY_FLAG}=off"


def test_disable_wins_over_the_decision_and_warns_once(monkeypatch, caplog):
    monkeypatch.delenv(ZERO_COPY_FLAG, raising=False)
    fake_device(monkeypatch, integrated=True)
    device = torch.device("cuda", 0)
    assert host_memory.zero_copy_reason(device) is None
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        host_memory.disable("kernel failed")
        host_memory.disable("kernel failed again")
    assert [r.getMessage() for r in caplog.records].count(
        "zero copy switched off: kernel failed; host frames are copied to device memory from now on"
    ) == 1
    assert "kernel failed" in host_memory.zero_copy_reason(device)


class FlakyPreprocessor:
    """Stands in for TritonPreprocessor: the first launch on a mapped frame fails."""

    def __init__(self, in_place: bool):
        self.lock = threading.Lock()
        self.read_in_place = False
        self.calls = 0
        self.in_place = in_place

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.read_in_place = self.in_place and host_memory._disabled is None
        if self.read_in_place:
            raise RuntimeError("Pointer argument (at 0) cannot be accessed from Triton")


def test_a_failed_launch_on_a_mapped_frame_switches_zero_copy_off_and_redoes_the_frame(monkeypatch):
    from inference_accel.preprocess import triton_launch

    flaky = FlakyPreprocessor(in_place=True)
    monkeypatch.setattr(triton_launch, "_default", flaky)
    triton_launch.launch(None, None, 0, None)
    assert flaky.calls == 2 and "cannot be accessed from Triton" in host_memory._disabled


def test_a_failed_launch_on_a_copied_frame_is_not_swallowed(monkeypatch):
    from inference_accel.preprocess import triton_launch

    class Broken(FlakyPreprocessor):
        def __call__(self, *args, **kwargs):
            self.calls += 1
            raise RuntimeError("launch failed")

    broken = Broken(in_place=False)
    monkeypatch.setattr(triton_launch, "_default", broken)
    with pytest.raises(RuntimeError, match="launch failed"):
        triton_launch.launch(None, None, 0, None)
    assert broken.calls == 1 and host_memory._disabled is None
