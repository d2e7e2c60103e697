"""One suite run: matrix, synthetic outputs, side by side; then JSON, charts and the page.

What ``inference-accel bench --matrix`` calls (and ``parity/gpu_selfcheck.py``
after its parity checks). :func:`run_suite` measures and returns the JSON
document; :func:`write_outputs` writes the JSON file and, given a docs folder,
the charts under ``docs/bench/`` and the generated section of
``docs/BENCHMARKS.md``.

>>> SuiteOptions(videos=["312p"]).command()
'inference-accel bench --matrix --videos 312p --frames 30 --runs 3 --warmup 2'
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from inference_accel.benchsuite.matrix import FLAG_NAMES, MatrixSettings, run_matrix

logger = logging.getLogger("inference_accel")

DEFAULT_JSON = "bench-matrix.json"
REPORT_JSON = Path("bench") / "matrix.json"


@dataclass
class SuiteOptions:
    videos: list[str]
    frames: int = 30
    runs: int = 3
    warmup: int = 2
    model: str | None = None
    device: str = "cpu"
    pinned: dict = field(default_factory=dict)
    pipeline_options: dict = field(default_factory=dict)
    synthetic: bool = True
    inference_models_python: str | None = None
    report_dir: str | None = None
    json_path: str | None = None
    time_budget_s: float | None = None  # for the matrix cells (parity/gpu_selfcheck.py's short matrix)

    def command(self) -> str:
        """The command line that reproduces this run."""
        parts = ["inference-accel bench --matrix", f"--videos {','.join(self.videos)}", f"--frames {self.frames}",
                 f"--runs {self.runs}", f"--warmup {self.warmup}"]
        if self.model:
            parts.append(f"--model {self.model}")
        option = {"preproc": "--preproc", "postproc": "--postproc", "cuda_graphs": "--cuda-graphs",
                  "depth": "--pipeline-depth"}
        for axis, value in self.pinned.items():
            text = {True: "fast", False: "reference"}[value] if axis in ("preproc", "postproc") else (
                ("on" if value else "off") if axis == "cuda_graphs" else str(value))
            parts.append(f"{option[axis]} {text}")
        if not self.synthetic:
            parts.append("--no-synthetic")
        if self.inference_models_python:
            parts.append(f"--inference-models-python {self.inference_models_python}")
        if self.report_dir:
            parts.append(f"--report {self.report_dir}")
        if self.json_path:
            parts.append(f"--json {self.json_path}")
        return " ".join(parts)


def environment_notes(environ=None) -> list[str]:
    """The flag variables set in the environment: the matrix sweeps them, so their values are overridden."""
    env = os.environ if environ is None else environ
    return [f"{name}={env[name]} is set, but the matrix sweeps {axis}: the environment value is not used "
            f"(pin the axis with the CLI option instead)" for axis, name in FLAG_NAMES.items() if env.get(name, "").strip()]


def run_suite(options: SuiteOptions, progress: bool = True) -> dict:
    """Measure everything the options ask for; the run's JSON document."""
    from inference_accel.benchsuite.sidebyside import run_side_by_side
    from inference_accel.benchsuite.synthetic import run_scenario

    notes = environment_notes()
    for note in notes:
        logger.info("%s", note)
    document = run_matrix(MatrixSettings(videos=options.videos, runs=options.runs, frames=options.frames,
                                         warmup=options.warmup, model=options.model, device=options.device,
                                         pinned=options.pinned, pipeline_options=options.pipeline_options,
                                         time_budget_s=options.time_budget_s),
                          progress=progress)
    document["command"] = options.command()
    document["notes"] = notes
    videos = {}
    for row in document["cells"]:
        videos.setdefault(row["video"], (tuple(row["frame_hw"]), row["video_path"]))
    if options.synthetic and not document.get("interrupted"):
        spec = _engine_spec(options.model)
        settings = options.pipeline_options
        if settings.get("resize_mode"):
            spec["resize_mode"] = settings["resize_mode"]
        document["synthetic"] = run_scenario({n: hw for n, (hw, _) in videos.items()}, frames=options.frames,
                                             threshold=settings.get("threshold", 0.4), device=options.device,
                                             max_detections=settings.get("max_detections", 300), **spec)
    elif not options.synthetic:
        document["synthetic"] = {"status": "n/a", "reason": "--no-synthetic"}
    if not document.get("interrupted"):
        try:  # a failing inference-models run must not cost the matrix already measured
            document["side_by_side"] = run_side_by_side(
                {n: path for n, (_, path) in videos.items()}, options.frames, options.runs,
                options.inference_models_python, model=options.model, device=options.device,
                threshold=options.pipeline_options.get("threshold", 0.4))
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON and the page, and logged
            logger.warning("the side by side with inference-models failed: %s: %s", type(exc).__name__, exc)
            document["side_by_side"] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        ignored = [f"--{k.replace('_', '-')}" for k in ("resize_mode", "max_detections")
                   if options.pipeline_options.get(k) not in (None, 300)]
        if ignored and document["side_by_side"].get("status") == "ok":
            document["side_by_side"]["note"] = (
                f"{', '.join(ignored)} apply to the matrix and the synthetic part only: the side by side runs the "
                "model's resize mode and inference-models' own detection limit on all three systems")
    return document


def _engine_spec(model: str | None) -> dict:
    """The synthetic outputs' shapes and resize mode: the model's (queries, classes, mask and input size,
    resize mode) when they can be read, else seg-nano's."""
    try:
        from inference_accel.models.source import resolve_model

        source = resolve_model(model)
        spec = {"resize_mode": source.resize_mode} if source.resize_mode else {}
        if str(source.path).lower().endswith(".onnx"):
            import onnx

            graph = onnx.load(str(source.path), load_external_data=False).graph
            dims = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in [*graph.input, *graph.output]}
            spec.update(input_hw=tuple(dims["input"][2:4]), queries=dims["labels"][1], classes=dims["labels"][2],
                        mask_hw=tuple(dims["masks"][2:4]))
        return spec
    except Exception as exc:  # noqa: BLE001 - the defaults (seg-nano's shapes) then apply, and the log says why
        logger.info("synthetic outputs take seg-nano's shapes: the model's could not be read (%s)", exc)
    return {}


def write_outputs(document: dict, options: SuiteOptions) -> dict[str, Path]:
    """The JSON file; with a report folder also the charts and the page. Returns what was written."""
    from inference_accel.benchsuite.charts import write_charts
    from inference_accel.benchsuite.report import write_report

    written: dict[str, Path] = {}
    docs = Path(options.report_dir) if options.report_dir else None
    json_path = Path(options.json_path) if options.json_path else (docs / REPORT_JSON if docs else Path(DEFAULT_JSON))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    written["json"] = json_path
    if docs is not None:
        charts = write_charts(document, docs / "bench")
        written.update({f"chart {k}": v for k, v in charts.items()})
        written["page"] = write_report(document, docs, charts)
    return written
