"""Side by side: stock inference-models, accelerated inference-models and our pipeline.

The same model (the matrix's ONNX, wrapped as a Roboflow package with
:func:`inference_accel.ab.sides.inference_models_package`) and the same frames
(decoded from the same video files) go through:

- **stock**: inference-models' own RF-DETR-Seg class, ``model(frame)``;
- **accelerated**: the same object accelerated by
  :func:`inference_accel.integrations.inference_models.accelerate`;
- **ours**: :class:`~inference_accel.pipeline.SegmentationPipeline` with the
  fast paths (its default flags), no response payload (inference-models
  builds none either).

inference-models lives in its own venv (it pins Pillow < 13), so stock and
accelerated run interleaved frame by frame (the order alternating) in a
subprocess of that venv's python (``python -m
inference_accel.benchsuite.sidebyside --worker ...``), which writes JSON;
ours runs in this process. The two alternate run by run (run 1: ours first,
run 2: the subprocess first, ...), and the JSON says so. Ratios are fps
against stock. Without that python, the part is ``"n/a"`` with the reason.

>>> ratios({"stock": 2.0, "accelerated": 3.0, "ours": 4.0})
{'accelerated': 1.5, 'ours': 2.0}
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEMS = ("stock", "accelerated", "ours")
ARRANGEMENT = ("stock and accelerated: one process (the inference-models venv), interleaved frame by frame, order "
               "alternating; ours: this process; the two processes alternate run by run")


def ratios(fps: dict[str, float]) -> dict[str, float | None]:
    """fps of accelerated and ours over stock's."""
    stock = fps.get("stock")
    return {name: (fps[name] / stock if stock and fps.get(name) is not None else None)
            for name in ("accelerated", "ours")}


def _frames(video_path: str, limit: int) -> list:
    from inference_accel.media import VideoFrames

    return list(VideoFrames(Path(video_path), limit=limit))


def _fps_entry(values: list[float], per_frame_ms: list[float]) -> dict:
    return {"fps": {"mean": statistics.fmean(values), "min": min(values), "max": max(values)},
            "median_frame_ms": statistics.median(per_frame_ms) if per_frame_ms else None}


# -- the worker: runs in the inference-models venv -----------------------------------------------
def worker(videos: dict[str, str], frames: int, warmup: int, model: str | None, threshold: float,
           mask_format: str, device: str) -> dict:
    """Stock and accelerated inference-models on each video's frames, interleaved frame by frame."""
    from inference_models import AutoModel

    from inference_accel.ab.sides import inference_models_package
    from inference_accel.integrations.inference_models import accelerate, require_inference_models
    from inference_accel.parity import compare_detections

    version = require_inference_models()
    out = {"inference_models": version, "python": sys.executable, "mask_format": mask_format, "videos": {}}
    with tempfile.TemporaryDirectory(prefix="bench-im-") as scratch:
        package = inference_models_package(model, Path(scratch))
        kwargs = {"onnx_execution_providers": ["CPUExecutionProvider"]} if device == "cpu" else {}
        stock = AutoModel.from_pretrained(str(package), **kwargs)
        models = {"stock": stock, "accelerated": accelerate(copy.copy(stock))}
        for name, path in videos.items():
            decoded = _frames(path, frames + warmup)
            times = {m: [] for m in models}
            different = 0
            for index, frame in enumerate(decoded):
                order = list(models) if index % 2 == 0 else list(reversed(list(models)))
                outputs = {}
                for m in order:
                    start = time.perf_counter()
                    outputs[m] = models[m](frame, confidence=threshold, mask_format=mask_format)[0]
                    elapsed = time.perf_counter() - start
                    if index >= warmup:
                        times[m].append(elapsed)
                if index >= warmup:
                    different += bool(compare_detections(outputs["stock"].to_supervision(),
                                                         outputs["accelerated"].to_supervision()))
            out["videos"][name] = {"frames": len(times["stock"]), "differing_frames": different,
                                   "seconds": {m: sum(v) for m, v in times.items()},
                                   "frame_ms": {m: [t * 1e3 for t in v] for m, v in times.items()}}
    return out


# -- the driver: runs in the main venv -------------------------------------------------------------
def find_python(explicit: str | None) -> tuple[str | None, str | None]:
    """``(python, None)`` to run inference-models with, or ``(None, reason)``.

    An explicit ``--inference-models-python`` wins; else this interpreter when inference-models imports here.
    """
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            return None, f"--inference-models-python {explicit}: not an executable file"
        return str(path), None
    try:
        import inference_models  # noqa: F401
    except ImportError:
        return None, ("inference-models is not importable in this venv and no --inference-models-python was given "
                      "(e.g. --inference-models-python .venv-integration/bin/python)")
    return sys.executable, None


def _run_worker(python: str, videos: dict[str, str], frames: int, warmup: int, model: str | None,
                threshold: float, mask_format: str, device: str, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-im-out-") as tmp:
        out = Path(tmp) / "worker.json"
        command = [python, "-m", "inference_accel.benchsuite.sidebyside", "--worker", "--json", str(out),
                   "--videos", json.dumps(videos), "--frames", str(frames), "--warmup", str(warmup),
                   "--threshold", str(threshold), "--mask-format", mask_format, "--device", device]
        if model:
            command += ["--model", str(model)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
        if done.returncode != 0 or not out.is_file():
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"the inference-models worker ({python}) failed with exit {done.returncode}: {tail}")
        return json.loads(out.read_text())


def _run_ours(pipeline, videos: dict[str, str], frames: int, warmup: int) -> dict:
    out = {}
    for name, path in videos.items():
        decoded = _frames(path, frames + warmup)
        list(pipeline.run(decoded[:warmup]))
        per_frame, last = [], time.perf_counter()
        start = last
        for _ in pipeline.run(decoded[warmup:]):
            now = time.perf_counter()
            per_frame.append((now - last) * 1e3)
            last = now
        out[name] = {"frames": len(per_frame), "seconds": time.perf_counter() - start, "frame_ms": per_frame}
    return out


def run_side_by_side(videos: dict[str, str], frames: int, runs: int, python: str | None, *,
                     warmup: int = 1, model: str | None = None, threshold: float = 0.4,
                     mask_format: str = "dense", device: str = "cpu", timeout: float = 3600.0) -> dict:
    """The three systems on each video, ``runs`` times, alternating processes; the JSON part."""
    python, reason = find_python(python)
    if python is None:
        return {"status": "n/a", "reason": reason}
    from inference_accel.models.source import resolve_model
    from inference_accel.pipeline import SegmentationPipeline

    onnx = str(resolve_model(model).path)
    if not onnx.lower().endswith(".onnx"):
        return {"status": "n/a", "reason": f"inference-models needs the ONNX model; {onnx} is not one"}
    pipeline = SegmentationPipeline(onnx, device=device, threshold=threshold, build_response=False)
    collected = {"ours": [], "im": []}
    for run in range(runs):
        order = ("ours", "im") if run % 2 == 0 else ("im", "ours")
        for side in order:
            if side == "ours":
                collected["ours"].append(_run_ours(pipeline, videos, frames, warmup))
            else:
                collected["im"].append(_run_worker(python, videos, frames, warmup, onnx, threshold, mask_format,
                                                   device, timeout))
    first = collected["im"][0]
    rows = []
    for name in videos:
        fps = {"stock": [], "accelerated": [], "ours": []}
        frame_ms = {"stock": [], "accelerated": [], "ours": []}
        differing = 0
        for im in collected["im"]:
            entry = im["videos"][name]
            differing += entry["differing_frames"]
            for system in ("stock", "accelerated"):
                fps[system].append(entry["frames"] / entry["seconds"][system])
                frame_ms[system] += entry["frame_ms"][system]
        for ours in collected["ours"]:
            fps["ours"].append(ours[name]["frames"] / ours[name]["seconds"])
            frame_ms["ours"] += ours[name]["frame_ms"]
        systems = {s: _fps_entry(fps[s], frame_ms[s]) for s in SYSTEMS}
        rows.append({"video": name, "frames": frames, "systems": systems,
                     "ratios_vs_stock": ratios({s: systems[s]["fps"]["mean"] for s in SYSTEMS}),
                     "stock_vs_accelerated_differing_frames": differing})
    return {"status": "ok", "python": python, "inference_models": first["inference_models"],
            "mask_format": mask_format, "threshold": threshold, "runs": runs, "warmup": warmup,
            "arrangement": ARRANGEMENT,
            "timed": ("stock/accelerated: model(frame) (pre_process, forward, post_process); ours: the pipeline's "
                      "stages without the response payload; frames decoded before timing"),
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="inference-models worker of the side-by-side benchmark")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--json", required=True)
    parser.add_argument("--videos", required=True, help="JSON object: name -> video path")
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--model")
    parser.add_argument("--threshold", type=float, default=0.4)
    parser.add_argument("--mask-format", default="dense")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = worker(json.loads(args.videos), args.frames, args.warmup, args.model, args.threshold,
                    args.mask_format, args.device)
    Path(args.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
