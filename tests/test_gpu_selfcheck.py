"""``parity/gpu_selfcheck.py`` on a machine without a GPU: its exit, its comparison and its report.

The checks themselves need a GPU; what is pure Python (the bitwise
comparison, the verdict, the JSON and Markdown report, the no-GPU exit) is
tested here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "parity" / "gpu_selfcheck.py"


@pytest.fixture(scope="module")
def selfcheck():
    spec = importlib.util.spec_from_file_location("gpu_selfcheck", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_selfcheck"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_selfcheck", None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the no-GPU exit does not apply")
def test_without_a_gpu_it_exits_non_zero_with_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0], out.stderr
    assert not list(tmp_path.iterdir())  # no half-written report


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_one_ulp_is_a_difference(selfcheck, dtype):
    expected = torch.linspace(-2.1, 2.6, 1000).to(dtype)
    assert selfcheck.bitwise_difference(expected.clone(), expected) is None
    got = expected.clone()
    got[417] = torch.nextafter(got[417:418].float(), torch.tensor([10.0])).to(dtype) if dtype == torch.float32 \
        else (got[417:418].view(torch.int16) + 1).view(dtype)
    assert got[417] != expected[417] and abs(float(got[417]) - float(expected[417])) < 1e-2
    problem = selfcheck.bitwise_difference(got, expected)
    assert problem is not None and problem.startswith("1 of 1000 elements differ; first at flat index 417")


def test_bytes_not_values(selfcheck):
    assert selfcheck.bitwise_difference(torch.tensor([-0.0]), torch.tensor([0.0])) is not None  # -0.0 == 0.0 as values
    nan = torch.tensor([float("nan"), 1.0])
    assert selfcheck.bitwise_difference(nan, nan.clone()) is None  # NaN != NaN as values
    assert "dtype" in selfcheck.bitwise_difference(torch.zeros(2), torch.zeros(2, dtype=torch.float16))
    assert "elements" in selfcheck.bitwise_difference(torch.zeros(2), torch.zeros(3))
    # A strided GPU-side view compares by its values' bytes, whatever its strides.
    base = torch.arange(12.0).view(3, 4)
    assert selfcheck.bitwise_difference(base.t(), base.t().contiguous()) is None


def test_verdict_and_exit_status(selfcheck):
    Part = selfcheck.Part
    ok, bad, short = Part("a", "claim", passed=3), Part("b", "claim"), Part("c", "claim", passed=1)
    bad.record("case 1", "2 pixel(s)")
    short.not_run.append("8k case")
    assert selfcheck.verdict([ok]) == "PASS" and selfcheck.exit_status("PASS") == 0
    assert selfcheck.verdict([ok, short]) == "INCOMPLETE" and selfcheck.exit_status("INCOMPLETE") == 3
    assert selfcheck.verdict([ok, short, bad]) == "FAIL" and selfcheck.exit_status("FAIL") == 1


def test_report_is_json_and_paste_ready_markdown(selfcheck):
    env = selfcheck.environment()  # works without a GPU: the GPU fields say so
    assert env["gpu"] == "none" or torch.cuda.is_available()
    for key in ("torch", "triton", "pillow", "tensorrt", "inference_accel", "cuda", "driver"):
        assert env[key]
    part = selfcheck.Part("preprocessing", "byte for byte", passed=53)
    part.record("8k -> 624", "1 of 1168128 elements differ")
    rows = [{"model": "seg-nano.plan", "video": "1080p", "paths": "fast", "graphs": "on", "fps": 412.3,
             "median_ms": {"preprocess": 0.41, "inference": 1.7, "postprocess": 0.52}, "identical": "reference: yes"}]
    report = selfcheck.build_report(env, [part], rows, seconds=123.4)
    assert json.loads(json.dumps(report, default=str))["verdict"] == "FAIL"
    markdown = selfcheck.render_markdown(report)
    assert markdown.startswith("## inference_accel GPU self-check: FAIL\n")
    assert f"| torch | {torch.__version__} |" in markdown
    assert "| preprocessing | byte for byte | 53 | 1 | 0 |" in markdown
    assert "| seg-nano.plan | 1080p | fast | on | 412.3 | 0.41 | 1.70 | 0.52 | reference: yes |" in markdown
    assert "- preprocessing: 8k -> 624: 1 of 1168128 elements differ" in markdown


def test_run_cases_records_crashes_and_the_budget(selfcheck):
    part = selfcheck.Part("demo", "claim")

    def body(case):
        if case == 2:
            raise ValueError("boom")
        return None if case != 3 else "differs"

    selfcheck.run_cases(part, [1, 2, 3], str, body, budget=60)
    assert part.passed == 1 and part.failures == ["2: raised ValueError: boom", "3: differs"]
    late = selfcheck.Part("late", "claim")
    selfcheck.run_cases(late, [1, 2], str, body, budget=-1)
    assert late.passed == 0 and late.not_run == ["1", "2"]


def test_chunked_mask_comparison_on_the_cpu(selfcheck):
    """The postprocessing comparison, on CPU tensors (the sparse CPU path as the fast one)."""
    from inference_accel.postprocess.sparse_cpu import postprocess_sparse_cpu
    from inference_accel.preprocess.geometry import plan_geometry

    rng = np.random.default_rng(0)
    logits = torch.full((5, 4), -9.0)
    logits[np.arange(4), rng.integers(0, 4, 4)] = 3.0
    boxes = torch.from_numpy(rng.uniform(0.2, 0.8, (5, 4)).astype(np.float32))
    masks = torch.from_numpy(rng.standard_normal((5, 13, 13)).astype(np.float32))
    geometry = plan_geometry((90, 160), (52, 52), "letterbox")
    got = postprocess_sparse_cpu(logits, boxes, masks, geometry=geometry)
    assert len(got) == 4
    assert selfcheck.compare_with_chunked_reference(got, logits, boxes, masks, geometry, chunk=3) is None
    got.confidence = got.confidence.copy()
    got.confidence[0] = np.nextafter(got.confidence[0], np.float32(1))
    assert selfcheck.compare_with_chunked_reference(got, logits, boxes, masks, geometry) == "confidence differs"


def test_end_to_end_part_on_the_cpu(selfcheck, tmp_path, monkeypatch):
    """The end-to-end part's bookkeeping (variants, comparisons, rows, Markdown), on the CPU with
    the tiny ONNX model and a TensorRT stand-in name: the whole flow a GPU runs, minus the GPU."""
    from inference_accel.flags import Flags
    from tests.helpers_onnx import write_tiny_seg_model

    model = str(write_tiny_seg_model(tmp_path / "tiny.onnx"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (90, 120, 3), dtype=np.uint8) for _ in range(4)]
    monkeypatch.setattr(selfcheck, "video_frames", lambda video, limit: frames[:limit])
    parts, rows = selfcheck.check_end_to_end([model], Flags(), 4, budget=300, videos=["tiny"], device="cpu")
    fast_vs_ref, graphs = parts
    assert (fast_vs_ref.passed, fast_vs_ref.failures, graphs.passed) == (1, [], 0)  # no .plan: no graph pair
    assert [r["paths"] for r in rows] == ["fast", "reference"]
    assert rows[0]["identical"] == "reference: yes" and rows[0]["fps"] > 0 and "identical" not in rows[1]
    assert rows[0]["graphs"].startswith("off (")
    late, _ = selfcheck.check_end_to_end([model], Flags(), 4, budget=-1, videos=["tiny"], device="cpu")
    assert late[0].not_run == ["tiny.onnx tiny"]
    markdown = selfcheck.render_markdown(selfcheck.build_report({}, parts, rows, 1.0))
    assert "| tiny.onnx | tiny | fast |" in markdown


def test_a_fast_run_off_the_fast_paths_or_off_the_graphs_is_a_failure(selfcheck):
    from types import SimpleNamespace

    def frame(pre, post):
        return SimpleNamespace(implementations={"preprocess": pre, "postprocess": post})

    graphed = [frame("triton (frame graph)", "triton (frame graph)")] * 3
    assert selfcheck._paths_not_taken(graphed, "cuda") is None
    assert selfcheck._paths_not_taken([frame("triton", "triton"), frame("native", "triton")], "cuda") == (
        "frames off the Triton paths: {'preprocess=native': 1}"
    )
    assert selfcheck._graphs_not_taken(graphed, "on") is None
    assert selfcheck._graphs_not_taken(graphed[:2] + [frame("triton", "reference")], "on") == (
        "1/3 frames took the per-stage path"
    )
    assert selfcheck._graphs_not_taken(graphed, "off (disabled after a failure: GraphMismatch)") == (
        "whole-frame graphs did not run: off (disabled after a failure: GraphMismatch)"
    )
