"""The parity tool (``inference-accel parity A B``): the comparison core catches every planted difference.

Fast: synthetic ``sv.Detections`` fed to the core directly, and the CLI end to
end on the tiny ONNX model of ``tests/helpers_onnx.py`` and two small images.
"""

from __future__ import annotations

import json
import importlib.util

import cv2
import numpy as np
import pytest
import supervision as sv

from inference_accel import cli
from inference_accel.ab.compare import Tolerance, compare_frame, summarize
from inference_accel.ab.report import write_outputs
from inference_accel.ab.sides import SideError, parse_side, read_recording
from tests.helpers_onnx import write_tiny_seg_model

HW = (24, 32)


def detections(boxes, classes, scores=None, dense=False, planes=None):
    """Rectangle masks filling each (inclusive) box; ``planes`` overrides them."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if planes is None:
        planes = np.zeros((len(boxes), *HW), bool)
        for plane, (x1, y1, x2, y2) in zip(planes, boxes.astype(int)):
            plane[y1 : y2 + 1, x1 : x2 + 1] = True
    mask = planes if dense else sv.CompactMask.from_dense(planes, boxes, HW)
    scores = np.linspace(0.9, 0.5, len(boxes)) if scores is None else np.asarray(scores, np.float64)
    return sv.Detections(xyxy=boxes, confidence=scores, class_id=np.asarray(classes, np.int64), mask=mask)


BOXES = [[1, 1, 8, 8], [10, 2, 20, 12], [4, 14, 28, 22]]
CLASSES = [0, 1, 2]


def base(**kw):
    return detections(BOXES, CLASSES, **kw)


def test_identical_sides_report_zero_differences():
    a, b = base(), base(dense=True)  # CompactMask vs dense masks: the same pixels
    record = compare_frame(a, b)
    assert record["problems"] == [] and record["problem_count"] == 0
    assert record["matched"] == 3 and record["masks_identical"] == 3 and record["differing_pixels"] == 0
    summary = summarize([record])
    assert summary["differs"] is False
    assert summary["mean_box_iou"] == 1.0 and summary["max_score_diff"] == 0.0
    assert summary["masks_identical_share"] == 1.0 and summary["worst_mask_iou"] == 1.0


def test_one_pixel_mask_difference_is_caught():
    planes = np.asarray(base(dense=True).mask).copy()
    planes[1, 12, 20] = False  # one pixel of mask 1 (class 1) off
    record = compare_frame(base(), detections(BOXES, CLASSES, planes=planes))
    assert record["matched"] == 3 and record["masks_identical"] == 2 and record["differing_pixels"] == 1
    assert record["problem_count"] == 1
    assert "mask differs: A#1 vs B#1 (class 1): 1 pixel(s) differ" in record["problems"][0]
    summary = summarize([record])
    assert summary["differs"] and summary["worst_mask_iou"] < 1.0 and summary["masks_identical"] == 2


def test_swapped_class_is_caught():
    record = compare_frame(base(), detections(BOXES, [0, 2, 2]))
    assert record["matched"] == 2
    assert record["class_disagreements"] == [{"a": 1, "b": 1, "class_a": 1, "class_b": 2, "iou": 1.0}]
    assert any(p.startswith("class differs: A#1 class 1 vs B#1 class 2") for p in record["problems"])
    assert summarize([record])["class_disagreements"] == 1


def test_dropped_detection_is_caught():
    b = detections(BOXES[:2], CLASSES[:2], scores=[0.9, 0.7])
    record = compare_frame(base(), b)
    assert record["only_a"] == [2] and record["only_b"] == []
    assert "detection count differs: A 3 vs B 2" in record["problems"]
    assert any(p.startswith("only in A: A#2 class 2") for p in record["problems"])
    summary = summarize([record])
    assert summary["differs"] and summary["only_a"] == 1 and summary["frames_count_differs"] == 1


def test_score_and_box_tolerances():
    shifted = base(scores=np.linspace(0.9, 0.5, 3) + 1e-4)
    assert compare_frame(base(), shifted)["problem_count"] == 3  # default: exact scores
    assert compare_frame(base(), shifted, tol=Tolerance(score=1e-3))["problem_count"] == 0
    moved = base()
    moved.xyxy = moved.xyxy + 0.25  # same masks, boxes off by a quarter pixel
    assert any("box differs" in p for p in compare_frame(base(), moved)["problems"])
    assert compare_frame(base(), moved, tol=Tolerance(box=0.5))["problem_count"] == 0


def test_report_names_the_differences_and_draws_the_worst_frame(tmp_path):
    frames = [np.full((*HW, 3), 100, np.uint8)] * 2
    a = [base(), base()]
    b = [base(), detections(BOXES, [0, 2, 2])]
    records = [compare_frame(x, y, i) for i, (x, y) in enumerate(zip(a, b))]
    summary = dict(summarize(records), side_a="A", side_b="B", preprocess_note="skipped")
    written = write_outputs(tmp_path, records, summary, frames, a, b)
    report = written["report"].read_text()
    assert "**DIFFERENT**" in report and "class differs: A#1 class 1 vs B#1 class 2" in report
    assert [p.name for p in written["images"]] == ["worst-frame-0001.png"]
    image = cv2.imread(str(written["images"][0]))
    assert image.shape == (HW[0], 3 * HW[1], 3)
    lines = written["frames"].read_text().splitlines()
    assert [json.loads(line)["problem_count"] for line in lines] == [0, 1]


def test_side_specs():
    assert parse_side("ours").options == {}
    assert parse_side("ours:preproc=reference,postproc=fast").options == {"preproc": "reference", "postproc": "fast"}
    assert parse_side("accel-im").kind == "accel-im"
    for bad in ("ours:preproc=slow", "ours:colour=red", "theirs", "recorded:/nonexistent-dir"):
        with pytest.raises(SideError):
            parse_side(bad)


# -- the CLI end to end ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    model = write_tiny_seg_model(root / "tiny.onnx", size=32, queries=5, classes=4, seed=3)
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    return model, images


def run(*args):
    return cli.main(["parity", *map(str, args), "--quiet"])


def test_cli_identical_sides_exit_0_and_write_three_outputs(tiny, tmp_path, capsys):
    model, images = tiny
    out = tmp_path / "out"
    code = run("ours", "ours:postproc=reference", "--model", model, "--input", images, "--frames", 2,
               "--threshold", 0.05, "--out", out)
    text = capsys.readouterr().out
    assert code == 0, text
    assert "IDENTICAL" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 2 and summary["differs"] is False and summary["detections_a"] > 0
    assert summary["masks_identical"] == summary["masks_compared"] == summary["matched"] == summary["detections_a"]
    assert len((out / "frames.jsonl").read_text().splitlines()) == 2
    assert "**IDENTICAL**" in (out / "report.md").read_text()
    assert not list(out.glob("*.png"))


def test_cli_default_threshold_end_to_end(tiny, tmp_path):
    model, images = tiny
    out = tmp_path / "out"
    assert run("ours", "ours:postproc=reference", "--model", model, "--frames", 2, "--input", images, "--out", out) == 0
    assert {p.name for p in out.iterdir()} == {"frames.jsonl", "summary.json", "report.md"}


def test_cli_recording_with_a_planted_difference_fails(tiny, tmp_path, capsys):
    """Record a side, plant a dropped detection and a one-pixel mask change in the recording: exit 3, named."""
    model, images = tiny
    rec = tmp_path / "rec"
    assert run("ours", "--model", model, "--input", images, "--threshold", 0.05, "--record", rec) == 0
    assert len(read_recording(rec)) == 2
    assert run(f"recorded:{rec}", "ours", "--model", model, "--input", images, "--threshold", 0.05) == 0
    capsys.readouterr()

    lines = (rec / "frames.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    for key in ("xyxy", "confidence", "class_id", "masks"):
        first[key] = first[key][:-1]  # drop the last detection of frame 0
    dropped_class = json.loads(lines[0])["class_id"][-1]
    second = json.loads(lines[1])
    recorded = read_recording(rec)[1]
    from inference_accel.masks.coco_rle import to_coco_rle

    planes = recorded.mask.to_dense()
    target = int(np.flatnonzero(planes.reshape(len(planes), -1).any(axis=1))[0])  # a non-empty mask
    y, x = np.argwhere(planes[target])[0]
    planes[target, y, x] = False
    second["masks"] = [r["counts"].decode() for r in to_coco_rle(
        sv.CompactMask.from_dense(planes, np.tile([0, 0, planes.shape[2] - 1, planes.shape[1] - 1], (len(planes), 1)),
                                  planes.shape[1:]))]
    (rec / "frames.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")

    out = tmp_path / "out"
    code = run(f"recorded:{rec}", "ours", "--model", model, "--input", images, "--threshold", 0.05, "--out", out)
    text = capsys.readouterr().out
    assert code == cli.EXIT_DIFFERENT, text
    assert "DIFFERENT" in text
    report = (out / "report.md").read_text()
    assert "detection count differs" in report and f"only in B: B#{len(first['xyxy'])} class {dropped_class}" in report
    assert "1 pixel(s) differ" in report
    assert sorted(p.name for p in out.glob("*.png")) == ["worst-frame-0000.png", "worst-frame-0001.png"]


@pytest.mark.skipif(importlib.util.find_spec("inference_models") is not None, reason="inference-models is installed here")
def test_inference_models_side_without_it_is_one_clear_line(tiny, capsys):
    model, images = tiny
    assert run("ours", "stock-im", "--model", model, "--input", images) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "inference-models is not installed" in err and ".venv-integration" in err


def test_cli_one_side_needs_record(tiny, capsys):
    model, images = tiny
    assert run("ours", "--model", model, "--input", images) == cli.EXIT_ERROR
    assert "--record" in capsys.readouterr().err


def test_preprocessing_difference_is_measured_and_skipped_with_a_reason(tiny, tmp_path):
    a = [np.zeros((1, 3, 4, 4), np.float32)] * 2
    b = [a[0], a[0].copy()]
    assert cli._max_abs([a, b]) == 0.0
    b[1][0, 1, 2, 3] = 0.5  # one planted value
    assert cli._max_abs([a, b]) == 0.5
    model, images = tiny
    out = tmp_path / "out"
    assert run("ours", "ours", "--model", model, "--input", images, "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preprocess_max_abs_diff"] is None and summary["preprocess_note"].startswith("skipped: ")
    assert "skipped: only in-process stock-im / accel-im" in (out / "report.md").read_text()


@pytest.mark.skipif(importlib.util.find_spec("inference_models") is None, reason="needs inference-models (the integration venv)")
def test_stock_vs_accelerated_inference_models(tiny, tmp_path, capsys):
    """In the integration venv: stock-im vs accel-im, preprocessing tensors included, identical."""
    model, images = tiny
    out = tmp_path / "out"
    code = run("stock-im", "accel-im", "--model", model, "--input", images, "--threshold", 0.05, "--out", out)
    assert code == 0, capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preprocess_max_abs_diff"] == 0.0 and summary["matched"] == summary["detections_a"] > 0


def test_dense_masks_reaching_past_their_boxes_keep_every_pixel():
    """A dense mask is converted on its own extent, never cropped to its box (inference-models masks reach past theirs)."""
    planes = np.zeros((1, *HW), bool)
    planes[0, 2:20, 3:30] = True
    box = np.array([[5.0, 5.0, 9.0, 9.0]])
    dense = sv.Detections(xyxy=box, confidence=np.array([0.8]), class_id=np.array([1]), mask=planes)
    compact = sv.Detections(xyxy=box, confidence=np.array([0.8]), class_id=np.array([1]),
                            mask=sv.CompactMask.from_dense(planes, np.array([[0, 0, HW[1] - 1, HW[0] - 1]]), HW))
    assert compare_frame(dense, compact)["problems"] == []
    cropped = sv.CompactMask.from_dense(planes, box, HW)  # what cropping to the box would give
    record = compare_frame(dense, sv.Detections(xyxy=box, confidence=np.array([0.8]), class_id=np.array([1]), mask=cropped))
    assert record["problem_count"] == 2  # nothing matches at IoU > 0.5: one only in A, one only in B
