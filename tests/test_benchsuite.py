"""The fps benchmark suite (``inference-accel bench --matrix``): cells, JSON, report, charts, synthetic outputs, guard.

Fast: the tiny ONNX model of ``tests/helpers_onnx.py``, two or three frames.
No figure is judged here (speed belongs in ``development/``): the tests
check what the suite writes and how it decides.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_accel.benchsuite import guard, report, synthetic
from inference_accel.benchsuite.matrix import STAGES, MatrixSettings, all_cells, run_matrix
from inference_accel.flags import CUDA_GRAPHS_FLAG, Flags
from tests.helpers_onnx import write_tiny_seg_model

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(write_tiny_seg_model(tmp_path_factory.mktemp("bench") / "tiny.onnx", size=32, queries=5, classes=4))


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory) -> str:
    """Three 96x64 frames of a real photograph, written as an mp4."""
    from skimage import data

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (96, 64))
    for i in range(3):
        writer.write(cv2.resize(image[i * 40 : i * 40 + 400, i * 30 : i * 30 + 400], (96, 64)))
    writer.release()
    return str(path)


# -- cells -------------------------------------------------------------------------------------
def test_the_matrix_has_all_16_combinations_of_the_four_flags():
    cells = all_cells()
    combos = {(c.flags.preproc_fast, c.flags.postproc_fast, c.flags.cuda_graphs, c.flags.pipeline_depth) for c in cells}
    assert len(cells) == 16 and len(combos) == 16
    assert {depth for *_, depth in combos} == {1, 2}
    assert len({c.label for c in cells}) == 16


def test_a_pinned_axis_stays_fixed_and_an_unknown_axis_is_refused():
    cells = all_cells({"depth": 2, "cuda_graphs": False})
    assert len(cells) == 4 and all(c.flags.pipeline_depth == 2 and not c.flags.cuda_graphs for c in cells)
    with pytest.raises(ValueError, match="unknown matrix axes"):
        all_cells({"threads": 2})


@pytest.fixture(scope="module")
def cpu_document(tiny_model, tiny_video) -> dict:
    settings = MatrixSettings(videos=[tiny_video], runs=2, frames=2, warmup=0, model=tiny_model, device="cpu")
    return run_matrix(settings, progress=False)


def test_on_a_cpu_every_cell_is_a_row_and_the_graph_cells_say_why_not(cpu_document):
    rows = cpu_document["cells"]
    assert len(rows) == 16
    na = [r for r in rows if r["status"] == "n/a"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["flags"]["cuda_graphs"] for r in na} == {"on"} and len(na) == 8
    for row in na:
        assert CUDA_GRAPHS_FLAG in row["reason"] and "cannot be captured" in row["reason"]
        assert "fps" not in row  # no invented figure
    assert len(ok) == 8 and all(r["flags"]["cuda_graphs"] == "off" for r in ok)


def test_a_cell_that_ran_has_fps_spread_stage_medians_and_memory(cpu_document):
    for row in (r for r in cpu_document["cells"] if r["status"] == "ok"):
        fps = row["fps"]
        assert 0 < fps["min"] <= fps["mean"] <= fps["max"] and fps["stdev"] >= 0
        assert len(row["runs"]) == 2 and all(run["frames"] == 2 for run in row["runs"])
        assert set(row["median_ms"]) == set(STAGES) and row["median_ms"]["inference"] > 0
        assert row["peak_rss_mb"] > 50 and row["peak_device_mb"] is None
        wanted = {"preprocess": row["flags"]["preproc"], "postprocess": row["flags"]["postproc"]}
        for stage, mode in wanted.items():
            assert (row["implementations"][stage] == ["reference"]) == (mode == "reference"), row


def test_the_document_is_json_with_the_machine_and_settings(cpu_document):
    document = json.loads(json.dumps(cpu_document))
    assert document["schema"] == "inference_accel.bench_matrix/1"
    machine = document["machine"]
    for key in ("cpu_model", "cpu_cores", "gpu", "driver", "tensorrt", "torch", "pillow", "onnxruntime", "inference_accel"):
        assert machine[key] not in (None, ""), key
    assert document["machine_class"].endswith("nogpu") or machine["gpu"] != "none"
    assert document["settings"]["runs"] == 2 and document["settings"]["frames"] == 2
    assert document["engines"] == [{"name": "onnxruntime", "model": document["settings"]["model"], "device": "cpu",
                                    "status": "ok", "reason": None}]
    assert document["flag_names"]["cuda_graphs"] == CUDA_GRAPHS_FLAG


def test_a_plan_on_a_cpu_makes_every_cell_na_with_the_reason(tmp_path, tiny_video):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not an engine")
    settings = MatrixSettings(videos=[tiny_video], runs=1, frames=1, warmup=0, model=str(plan), device="cpu")
    document = run_matrix(settings, progress=False, run_cell_fn=lambda *a: pytest.fail("nothing may run"))
    assert len(document["cells"]) == 16
    assert all(r["status"] == "n/a" and "needs a CUDA GPU" in r["reason"] for r in document["cells"])


# -- the report ------------------------------------------------------------------------------
def fixture_document() -> dict:
    """A hand-written matrix document: two cells ran, one n/a, side by side and synthetic present."""

    def cell(preproc, postproc, graphs, depth, fps=None, reason=None):
        row = {"engine": "onnxruntime", "device": "cpu", "video": "312p", "video_path": "/x/312p.mp4",
               "frame_hw": [312, 556], "flags": {"preproc": preproc, "postproc": postproc, "cuda_graphs": graphs,
                                                 "depth": depth},
               "label": f"pre={preproc} post={postproc} graphs={graphs} depth={depth}",
               "short": f"{preproc[0].upper()}/{postproc[0].upper()} g{int(graphs == 'on')} d{depth}",
               "status": "n/a" if reason else "ok", "reason": reason}
        if fps:
            row.update(fps={"mean": fps[1], "stdev": 0.5, "min": fps[0], "max": fps[2]},
                       median_ms={"decode": 1.0, "preprocess": 10.0, "inference": 150.0, "postprocess": 60.0,
                                  "response": 20.0},
                       peak_rss_mb=1000.4, peak_device_mb=None, mean_detections=60.0,
                       implementations={"postprocess": [postproc if postproc == "reference" else "cpu"],
                                        "preprocess": [preproc if preproc == "reference" else "native"]})
        return row

    return {
        "schema": "inference_accel.bench_matrix/1", "created_utc": "2026-12-02T12:00:00Z", "elapsed_s": 600.0,
        "command": "inference-accel bench --matrix --videos 312p --frames 30 --runs 3 --warmup 2",
        "machine": {"cpu_model": "Test CPU", "cpu_cores": 2, "usable_cpus": 2, "usable_cpus_from": "2", "arch": "x86_64",
                    "gpu": "none", "driver": "none", "cuda": "none", "tensorrt": "none", "onnxruntime": "1.0",
                    "torch": "2.0", "pillow": "13.0.0", "inference_accel": "0.1.0"},
        "machine_class": "x86_64-2cpu-nogpu",
        "settings": {"videos": ["312p"], "runs": 3, "frames": 30, "warmup": 2, "model": "cached seg-nano export"},
        "flag_names": {"preproc": "P", "postproc": "Q", "cuda_graphs": CUDA_GRAPHS_FLAG, "depth": "D"},
        "method": "test method",
        "engines": [{"name": "onnxruntime", "model": None, "device": "cpu", "status": "ok", "reason": None}],
        "cells": [cell("reference", "reference", "off", 1, fps=(1.5, 2.0, 2.5)),
                  cell("reference", "reference", "on", 1, reason="graphs need TensorRT"),
                  cell("fast", "fast", "off", 1, fps=(4.0, 5.0, 6.0))],
        "synthetic": {"label": synthetic.LABEL, "status": "ok", "seed": 0, "threshold": 0.4, "method": "m",
                      "engine_output_shape": {"queries": 100, "classes": 91, "mask_hw": [78, 78], "input_hw": [312, 312]},
                      "rows": [{"video": "312p", "frame_hw": [312, 556], "frames": 30, "identical_frames": 30,
                                "detections_per_frame": {"min": 5, "max": 40, "mean": 21.5},
                                "mask_area_fraction": {"median": 0.0123, "under_5_percent": 0.9},
                                "paths": {"reference": {"median_ms": {"postprocess": 200.0, "response": 20.0}},
                                          "fast": {"median_ms": {"postprocess": 20.0, "response": 2.0}}},
                                "ratio_post_plus_response": 10.0}]},
        "side_by_side": {"status": "ok", "python": "/venv/bin/python", "inference_models": "0.39.6",
                         "mask_format": "dense", "threshold": 0.4, "runs": 3, "warmup": 1, "arrangement": "alternating",
                         "timed": "model(frame)",
                         "rows": [{"video": "312p", "frames": 30, "stock_vs_accelerated_differing_frames": 0,
                                   "systems": {"stock": {"fps": {"mean": 2.0, "min": 1.9, "max": 2.1}},
                                               "accelerated": {"fps": {"mean": 3.0, "min": 2.9, "max": 3.1}},
                                               "ours": {"fps": {"mean": 4.0, "min": 3.9, "max": 4.1}}},
                                   "ratios_vs_stock": {"accelerated": 1.5, "ours": 2.0}}]},
    }


def test_the_report_turns_a_fixture_into_the_expected_tables():
    text = report.render_section(fixture_document(), charts={"fps": "bench/matrix_fps.png"})
    lines = text.splitlines()
    assert "| reference | reference | off | 1 | 2.00 | 1.50-2.50 | 1.00x | 1.00 | 10.00 | 150.00 | 60.00 | 20.00 | 1000 | n/a | postprocess=reference, preprocess=reference |" in lines
    assert "| fast | fast | off | 1 | 5.00 | 4.00-6.00 | 2.50x | 1.00 | 10.00 | 150.00 | 60.00 | 20.00 | 1000 | n/a | postprocess=cpu, preprocess=native |" in lines
    assert "| reference | reference | on | 1 | n/a | | | | | | | | | | n/a: graphs need TensorRT |" in lines
    assert "| 312p (556x312) | 5-40 (mean 21.5) | 1.23% | 90% | 200.0 -> 20.0 | 20.0 -> 2.0 | 10.00x | 30/30 |" in lines
    assert "| 312p | 2.00 | 3.00 | 4.00 | 1.50x | 2.00x | 0 |" in lines
    assert "![fps per configuration](bench/matrix_fps.png)" in lines
    assert "Test CPU, 2 CPUs, no GPU" in text and "`inference-accel bench --matrix --videos 312p" in text
    assert "synthetic engine outputs (not a model)" in text


def test_the_report_says_why_a_part_did_not_run():
    document = fixture_document()
    document["side_by_side"] = {"status": "n/a", "reason": "inference-models is not importable"}
    del document["synthetic"]
    text = report.render_section(document)
    assert "n/a: inference-models is not importable" in text and "Not run in this matrix run." in text


def test_the_page_is_rewritten_only_between_the_markers_and_idempotently(tmp_path):
    page = tmp_path / "BENCHMARKS.md"
    before, after = "# Benchmarks\n\nhand-written intro\n\n", "\n## Hand-written tail\n\nkept as is\n"
    page.write_text(before + report.BEGIN + "\nold generated text\n" + report.END + after)
    report.write_report(fixture_document(), tmp_path)
    first = page.read_text()
    assert first.startswith(before + report.BEGIN) and first.endswith(report.END + after)
    assert "old generated text" not in first and "| 312p | 2.00 | 3.00 | 4.00 |" in first
    report.write_report(fixture_document(), tmp_path)
    assert page.read_text() == first


def test_a_page_without_markers_gets_them_appended_and_broken_markers_are_refused():
    assert report.replace_section("# Page\n", "body") == f"# Page\n\n{report.BEGIN}\nbody\n{report.END}\n"
    with pytest.raises(report.ReportError, match="exactly one"):
        report.replace_section(f"{report.END}\n{report.BEGIN}\n", "body")
    with pytest.raises(report.ReportError):
        report.replace_section(f"{report.BEGIN}\nno end\n", "body")


def test_the_other_benchmarks_are_listed_with_their_commands(tmp_path):
    (tmp_path / "postprocess.json").write_text(json.dumps([
        {"case": "c1", "impl": "reference", "median_s": 1.0}, {"case": "c1", "impl": "native-2t", "median_s": 0.25}]))
    (tmp_path / "masks.json").write_text("{}")  # not the expected format
    lines = report.other_benchmarks_table(tmp_path)
    assert len(lines) == 2 + len(report.OTHER_BENCHMARKS)
    post = next(line for line in lines if "postprocess.json" in line)
    assert "development/bench_postprocess.py" in post and "c1 4.0x" in post
    assert "present; not summarised (KeyError" in next(line for line in lines if "masks.json" in line)
    assert "not present: run the command" in next(line for line in lines if "concurrency.json" in line)


# -- charts ----------------------------------------------------------------------------------
def test_charts_are_png_files_drawn_from_the_fixture(tmp_path):
    pytest.importorskip("matplotlib")
    from inference_accel.benchsuite.charts import write_charts

    written = write_charts(fixture_document(), tmp_path / "bench")
    assert set(written) == {"fps", "stages", "side_by_side"}
    for path in written.values():
        data = Path(path).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_no_chart_is_drawn_without_figures(tmp_path):
    pytest.importorskip("matplotlib")
    from inference_accel.benchsuite.charts import write_charts

    document = fixture_document()
    document["cells"] = [c for c in document["cells"] if c["status"] == "n/a"]
    document["side_by_side"] = {"status": "n/a", "reason": "x"}
    assert write_charts(document, tmp_path) == {} and not list(tmp_path.glob("*.png"))


# -- the CLI ---------------------------------------------------------------------------------
def test_bench_matrix_on_two_frames_of_the_312p_sample_writes_json_charts_and_page(tmp_path, tiny_model):
    pytest.importorskip("matplotlib")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "BENCHMARKS.md").write_text(f"# Hand\n\nintro\n\n{report.BEGIN}\nold\n{report.END}\n\ntail\n")
    env = {k: v for k, v in os.environ.items() if k not in ("INFERENCE_ACCEL_TEST_DEVICE",)}
    env[CUDA_GRAPHS_FLAG] = "false"  # the matrix sweeps it anyway (and says so)
    result = subprocess.run(
        [sys.executable, "-m", "inference_accel.cli", "bench", "--matrix", "--videos", "312p", "--frames", "2",
         "--warmup", "0", "--runs", "1", "--model", tiny_model, "--device", "cpu", "--pipeline-depth", "1",
         "--quiet", "--report", str(docs)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads((docs / "bench" / "matrix.json").read_text())
    assert len(document["cells"]) == 8  # depth pinned to 1
    assert {r["status"] for r in document["cells"]} == {"ok", "n/a"}
    assert all(r["frame_hw"] == [312, 556] for r in document["cells"])
    assert document["command"].startswith("inference-accel bench --matrix --videos 312p --frames 2 --runs 1")
    assert any(CUDA_GRAPHS_FLAG in note for note in document["notes"])
    assert document["synthetic"]["rows"][0]["identical_frames"] == 2
    assert document["side_by_side"]["status"] in ("ok", "n/a")
    for name in ("matrix_fps.png", "matrix_stages.png"):
        assert (docs / "bench" / name).read_bytes().startswith(PNG_MAGIC)
    page = (docs / "BENCHMARKS.md").read_text()
    assert page.startswith("# Hand\n\nintro\n\n" + report.BEGIN) and page.endswith(report.END + "\n\ntail\n")
    assert "![fps per configuration](bench/matrix_fps.png)" in page


def test_matrix_options_without_matrix_and_single_video_with_it_are_errors(capsys):
    from inference_accel.cli import main

    assert main(["bench", "--runs", "2"]) == 2
    assert "--runs applies to --matrix only" in capsys.readouterr().err
    assert main(["bench", "--matrix", "--video", "312p"]) == 2
    assert "with --matrix give --videos" in capsys.readouterr().err
    assert main(["bench", "--matrix", "--videos", "no-such-video.mp4"]) == 2
    assert "neither a sample" in capsys.readouterr().err


# -- synthetic engine outputs -----------------------------------------------------------------
def test_synthetic_outputs_have_the_stated_statistics():
    import torch

    from inference_accel.postprocess.reference import postprocess_reference

    counts, areas, steps, edges = [], [], [], []
    for index in range(40):
        out = synthetic.synthetic_outputs(index, seed=11)
        det = postprocess_reference(*(torch.from_numpy(a) for a in (out.logits, out.boxes, out.masks)), frame_hw=(1080, 1920))
        counts.append(len(det))
        areas.extend(det.mask.reshape(len(det), -1).mean(axis=1).tolist())
        for q in np.flatnonzero(out.logits.max(axis=1) > synthetic.BELOW_THRESHOLD_LOGIT):
            m = out.masks[q]
            steps.append(max(np.abs(np.diff(m, axis=0)).max(), np.abs(np.diff(m, axis=1)).max()))
            a, b = m[:, :-1], m[:, 1:]
            crossing = (a > 0) != (b > 0)
            if crossing.any():
                edges.append(np.abs(a - b)[crossing].mean())
    assert min(counts) >= 5 and max(counts) <= 40 and len(set(counts)) > 5
    areas = np.array(areas)
    assert np.mean(areas < 0.05) >= 0.8  # COCO-like: most masks under 5% of the frame
    assert 0.004 < np.median(areas) < 0.025 and areas.max() < 0.6
    k = synthetic.EDGE_LOGITS_PER_PIXEL
    assert max(steps) <= 2 * k  # smooth: no jump beyond two edge steps between neighbouring mask pixels
    assert np.median(edges) >= 0.5 * k  # sharp: the logit crosses zero within about a mask pixel


def test_synthetic_outputs_are_deterministic_per_seed():
    a, b, c = (synthetic.synthetic_outputs(3, seed=s) for s in (5, 5, 6))
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("logits", "boxes", "masks"))
    assert not np.array_equal(a.masks, c.masks)


def test_the_synthetic_scenario_compares_fast_and_reference_on_the_same_outputs():
    part = synthetic.run_scenario({"small": (120, 200)}, frames=2, seed=1)
    row = part["rows"][0]
    assert part["label"] == synthetic.LABEL and "not a model" in part["label"]
    assert row["identical_frames"] == 2
    assert row["paths"]["reference"]["implementations"] == ["reference"]
    assert row["paths"]["fast"]["implementations"] != ["reference"]
    assert 5 <= row["detections_per_frame"]["min"] <= row["detections_per_frame"]["max"] <= 40


# -- the regression guard --------------------------------------------------------------------
def test_the_guard_fails_on_a_planted_drop_and_passes_otherwise(tmp_path):
    baseline = tmp_path / "matrix.json"
    baseline.write_text(json.dumps(fixture_document()))  # committed ratio 5.0 / 2.0 = 2.5x
    current = fixture_document()
    assert guard.ratio_of(current, "onnxruntime", "312p") == pytest.approx(2.5)
    verdict, lines, _ = guard.run_guard(baseline, current)
    assert verdict.ok and verdict.baseline == pytest.approx(2.5) and lines[-1].startswith("bench guard PASS")
    dropped = copy.deepcopy(current)
    dropped["cells"][2]["fps"]["mean"] = 2.4  # fast 2.4 fps vs reference 2.0: 1.2x < 60% of 2.5x
    verdict, lines, _ = guard.run_guard(baseline, dropped)
    assert not verdict.ok and verdict.floor == pytest.approx(1.5)
    assert any("REGRESSION" in line for line in lines) and lines[0].startswith("bench guard")


def test_the_guard_without_a_baseline_of_this_machine_class_uses_the_stated_floor(tmp_path):
    other = fixture_document()
    other["machine_class"] = "aarch64-8cpu-orin"
    baseline = tmp_path / "matrix.json"
    baseline.write_text(json.dumps(other))
    current = fixture_document()
    current["cells"][2]["fps"]["mean"] = 1.8  # slower than the reference
    verdict, lines, _ = guard.run_guard(baseline, current)
    assert not verdict.ok and verdict.baseline is None and verdict.floor == guard.FLOOR_WITHOUT_BASELINE
    assert "machine class 'aarch64-8cpu-orin'" in lines[0]


def test_the_guard_script_exit_status(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_guard", ROOT / "development" / "bench_guard.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    baseline, current = tmp_path / "base.json", tmp_path / "current.json"
    baseline.write_text(json.dumps(fixture_document()))
    current.write_text(json.dumps(fixture_document()))
    assert script.main(["--baseline", str(baseline), "--current", str(current)]) == 0
    dropped = fixture_document()
    dropped["cells"][2]["fps"]["mean"] = 2.2
    current.write_text(json.dumps(dropped))
    assert script.main(["--baseline", str(baseline), "--current", str(current)]) == 1


# -- samples ---------------------------------------------------------------------------------
def test_the_4k_sample_is_rendered_like_the_others():
    from inference_accel.media import SAMPLE_SIZES, camera_frames

    assert SAMPLE_SIZES["4K"] == (2160, 3840)
    frame = next(camera_frames(SAMPLE_SIZES["4K"], 2))
    assert frame.shape == (2160, 3840, 3) and frame.dtype == np.uint8 and frame.std() > 10


def test_cells_past_the_time_budget_are_not_run_and_say_so(tiny_model, tiny_video):
    settings = MatrixSettings(videos=[tiny_video], runs=1, frames=1, warmup=0, model=tiny_model, device="cpu",
                              pinned={"depth": 1}, time_budget_s=0.0)
    document = run_matrix(settings, progress=False, run_cell_fn=lambda *a: pytest.fail("the budget is spent"))
    statuses = {r["status"] for r in document["cells"]}
    assert statuses == {"n/a", "not run"} and document["time_budget_spent"]
    assert all("time budget" in r["reason"] for r in document["cells"] if r["status"] == "not run")
    assert "| not run |" in report.render_section(document)


def test_the_gpu_selfcheck_leaves_the_matrix_out_when_its_time_is_spent(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_selfcheck_bench", ROOT / "parity" / "gpu_selfcheck.py")
    selfcheck = importlib.util.module_from_spec(spec)
    sys.modules["gpu_selfcheck_bench"] = selfcheck  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(selfcheck)
        line = selfcheck.short_matrix(tmp_path, None, budget=150.0, left=30.0)
    finally:
        sys.modules.pop("gpu_selfcheck_bench", None)
    assert line.startswith("not run") and "time budget" in line and not list(tmp_path.iterdir())


def test_a_failing_inference_models_run_is_reported_and_keeps_the_matrix(tiny_model, tiny_video, tmp_path):
    from inference_accel.benchsuite.suite import SuiteOptions, run_suite

    failing = tmp_path / "python"
    failing.write_text("#!/bin/sh\necho 'no inference-models here' >&2\nexit 3\n")
    failing.chmod(0o755)
    options = SuiteOptions(videos=[tiny_video], frames=1, runs=1, warmup=0, model=tiny_model, device="cpu",
                           pinned={"preproc": True, "postproc": True, "depth": 1}, inference_models_python=str(failing))
    document = run_suite(options, progress=False)
    part = document["side_by_side"]
    assert part["status"] == "failed" and "exit 3" in part["reason"] and "no inference-models here" in part["reason"]
    assert [r["status"] for r in document["cells"]] == ["ok", "n/a"]
    assert document["synthetic"]["status"] == "ok"
    assert "failed: RuntimeError" in report.render_section(document)


def test_a_gpu_lists_tensorrt_and_onnxruntime_gpu_and_graphs_apply_to_tensorrt_only(monkeypatch):
    """The GPU engine choice, with the TensorRT build and onnxruntime's providers stood in (no GPU here)."""
    import types

    from inference_accel import extras
    from inference_accel.benchsuite import matrix

    monkeypatch.setattr(matrix, "tensorrt_plan", lambda model: ("/cache/seg-nano.plan", None))
    providers = types.SimpleNamespace(get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(extras, "onnxruntime", lambda: providers)
    tensorrt, ort_gpu = matrix.engines_for("cuda", None)
    assert (tensorrt.name, tensorrt.model, tensorrt.reason) == ("tensorrt", "/cache/seg-nano.plan", None)
    assert (ort_gpu.name, ort_gpu.device, ort_gpu.reason) == ("onnxruntime-gpu", "cuda", None)
    graphs_on = matrix.Cell(Flags(preproc_fast=False, postproc_fast=False, cuda_graphs=True))
    assert matrix.cell_reason(graphs_on, tensorrt) is None
    assert "onnxruntime-gpu cannot be captured" in matrix.cell_reason(graphs_on, ort_gpu)

    monkeypatch.setattr(matrix, "tensorrt_plan", lambda model: (None, "no TensorRT engine: the builder is missing"))
    monkeypatch.setattr(extras, "onnxruntime", lambda: types.SimpleNamespace(get_available_providers=lambda: ["CPUExecutionProvider"]))
    tensorrt, ort_gpu = matrix.engines_for("cuda", None)
    assert "builder is missing" in matrix.cell_reason(graphs_on, tensorrt)
    assert "no CUDAExecutionProvider" in ort_gpu.reason and "onnxruntime-gpu" in matrix.cell_reason(graphs_on, ort_gpu)
