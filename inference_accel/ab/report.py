"""Outputs of a parity run: ``frames.jsonl``, ``summary.json``, ``report.md`` and worst-frame images.

The images (``worst-frame-NNNN.png``, up to 3 of the frames that differ) show
three panels over the frame: A's masks (green) and boxes, B's masks (blue) and
boxes, and the XOR of the two mask unions (red; unmatched and class-swapped
detections boxed in yellow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import supervision as sv

from inference_accel.ab.compare import as_compact, badness


def _union(detections: sv.Detections, hw) -> np.ndarray:
    plane = np.zeros(hw, bool)
    masks = as_compact(detections, hw)
    if masks is not None:
        for i in range(len(masks)):
            plane |= np.asarray(masks[i], bool)
    return plane


def _panel(frame: np.ndarray, plane: np.ndarray, colour, boxes, box_colour=(255, 255, 255)) -> np.ndarray:
    import cv2

    out = (frame.astype(np.float32) * 0.6).astype(np.uint8)
    out[plane] = (0.4 * out[plane] + 0.6 * np.array(colour, np.float32)).astype(np.uint8)
    for box in boxes:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), box_colour, 1)
    return out


def worst_frame_image(frame: np.ndarray, a: sv.Detections, b: sv.Detections, record: dict) -> np.ndarray:
    """A | B | XOR, side by side (BGR), with labels."""
    import cv2

    hw = frame.shape[:2]
    ua, ub = _union(a, hw), _union(b, hw)
    odd_a = record["only_a"] + [d["a"] for d in record["class_disagreements"]]
    odd_b = record["only_b"] + [d["b"] for d in record["class_disagreements"]]
    odd = [a.xyxy[i] for i in odd_a] + [b.xyxy[j] for j in odd_b]
    panels = [
        _panel(frame, ua, (0, 200, 0), a.xyxy),
        _panel(frame, ub, (200, 80, 0), b.xyxy),
        _panel(frame, ua ^ ub, (0, 0, 255), odd, (0, 255, 255)),
    ]
    scale = max(0.4, hw[1] / 1200)
    for panel, text in zip(panels, (f"A: {record['count_a']}", f"B: {record['count_b']}",
                                    f"XOR: {int((ua ^ ub).sum())} px")):
        cv2.putText(panel, text, (5, int(20 * scale) + 5), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.6, (255, 255, 255), 1)
    return np.concatenate(panels, axis=1)


def _fmt(value, digits=6) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown(summary: dict, records: list[dict], images: list[str]) -> str:
    s = summary
    verdict = "**DIFFERENT**" if s["differs"] else "**IDENTICAL** (within tolerance)"
    lines = [
        f"# Parity: {s['side_a']} vs {s['side_b']}",
        "",
        f"Verdict: {verdict}. Inputs: `{s.get('source')}`, {s['frames']} frame(s); model `{s.get('model')}`.",
        f"Matching: same class, mask IoU > {s['iou_threshold']} (our sparse matcher); "
        f"tolerance: counts, classes and masks exact, |score diff| <= {s['tolerance']['score']}, "
        f"box coordinates within {s['tolerance']['box']} px.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| detections A / B | {s['detections_a']} / {s['detections_b']} |",
        f"| frames whose counts differ | {s['frames_count_differs']} |",
        f"| matched (same class, IoU > {s['iou_threshold']}) | {s['matched']} |",
        f"| class disagreements | {s['class_disagreements']} |",
        f"| only in A / only in B | {s['only_a']} / {s['only_b']} |",
        f"| mean box IoU | {_fmt(s['mean_box_iou'])} |",
        f"| max abs score difference | {_fmt(s['max_score_diff'])} |",
        f"| max abs box coordinate difference (px) | {_fmt(s['max_box_diff'])} |",
        f"| masks pixel-identical | {s['masks_identical']} of {s['masks_compared']}"
        f" ({_fmt(None if s['masks_identical_share'] is None else 100 * s['masks_identical_share'], 4)}%) |",
        f"| differing mask pixels (matched pairs) | {s['differing_pixels']} |",
        f"| mean / worst mask IoU | {_fmt(s['mean_mask_iou'])} / {_fmt(s['worst_mask_iou'])} |",
        f"| preprocessing tensor max abs difference | {s['preprocess_note']} |",
        f"| frames differing | {s['frames_differing']} of {s['frames']} |",
        "",
    ]
    bad = sorted((r for r in records if r["problem_count"]), key=badness)
    if bad:
        lines += ["## Differences (worst frames first)", ""]
        for r in bad[:20]:
            lines.append(f"- frame {r['frame']} ({r['problem_count']} difference(s)):")
            lines += [f"  - {p}" for p in r["problems"][:10]]
        if len(bad) > 20:
            lines.append(f"- ... and {len(bad) - 20} more frame(s): see frames.jsonl")
        lines.append("")
    if images:
        lines += ["## Worst frames (A | B | XOR)", ""] + [f"![{name}]({name})" for name in images] + [""]
    elif bad:
        lines += ["(no images: OpenCV could not write them)", ""]
    else:
        lines += ["No frame differs, so no XOR images were written.", ""]
    return "\n".join(lines)


def write_outputs(out: Path, records: list[dict], summary: dict, frames, dets_a, dets_b, worst: int = 3) -> dict:
    """Write every output into ``out``; returns their paths."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("worst-frame-*.png"):  # from an earlier run into the same folder
        stale.unlink()
    with open(out / "frames.jsonl", "w") as handle:
        for r in records:
            handle.write(json.dumps(r) + "\n")
    images = []
    for r in sorted((r for r in records if r["problem_count"]), key=badness)[:worst]:
        i = r["frame"]
        name = f"worst-frame-{i:04d}.png"
        if cv2.imwrite(str(out / name), worst_frame_image(frames[i], dets_a[i], dets_b[i], r)):
            images.append(name)
    summary = dict(summary, images=images)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(markdown(summary, records, images))
    return {"frames": out / "frames.jsonl", "summary": out / "summary.json", "report": out / "report.md",
            "images": [out / n for n in images]}
