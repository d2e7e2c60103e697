"""Sides of a parity run: what produces detections, and recordings of them.

A side spec is one of:

- ``ours`` or ``ours:preproc=reference,postproc=reference,cuda-graphs=off,depth=2,device=cpu``:
  our :class:`~inference_accel.pipeline.SegmentationPipeline` with those flags
  (``preproc``/``postproc``: ``fast`` or ``reference``, i.e.
  ``INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED`` / ``..._POSTPROC_ENABLED``);
- ``stock-im`` / ``accel-im``: inference-models' stock RF-DETR-Seg class, or it
  accelerated by :func:`inference_accel.integrations.inference_models.accelerate`
  (needs ``inference-models`` importable: the integration venv);
- ``recorded:DIR`` (or a directory holding ``frames.jsonl``): the recording of an
  earlier run (``inference-accel parity SIDE --record DIR``), e.g. made by another
  installed version of this package;
- ``venv:PATH`` or ``venv:PATH@SIDE``: ``SIDE`` (default ``ours``) run by the
  python of the venv ``PATH`` in a subprocess that records, then read back;
- ``git:REF`` or ``git:REF@SIDE``: the package of commit ``REF`` (of ``--repo``,
  default: the checkout this package is imported from), installed into a venv
  cached per commit (:mod:`inference_accel.ab.git_side`), then run like ``venv:``.

A recording is ``frames.jsonl`` (one JSON object per frame: ``frame``,
``image_hw``, ``xyxy``, ``confidence``, ``class_id``, ``masks`` as full-image
COCO RLE strings) and ``side.json`` (what produced it).

>>> parse_side("ours:postproc=reference").options
{'postproc': 'reference'}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import supervision as sv

from inference_accel.errors import InferenceAccelError, MissingDependencyError

OURS_OPTIONS = {
    "preproc": ("fast", "reference"),
    "postproc": ("fast", "reference"),
    "cuda-graphs": ("on", "off"),
    "depth": ("1", "2"),
    "device": ("cpu", "cuda"),
}
RECORDING = "frames.jsonl"


class SideError(InferenceAccelError):
    """A bad side spec or a side that cannot run here: one line, exit 2."""


@dataclass
class Side:
    spec: str
    kind: str  # ours | stock-im | accel-im | recorded | venv | git
    options: dict = field(default_factory=dict)
    path: Path | None = None  # recorded: the directory; venv: the venv; git: its venv, once prepared
    inner: str | None = None  # venv, git: the side run there
    ref: str | None = None  # git: the ref as given
    repo: Path | None = None  # git: the repository (None: this package's checkout)
    commit: str | None = None  # git: the commit the ref names, once prepared

    @property
    def label(self) -> str:
        """The spec, with the commit of a git side (``git:HEAD~1 (1a2b3c4d5e6f)``)."""
        return f"{self.spec} ({self.commit[:12]})" if self.commit else self.spec


def parse_side(spec: str, repo: str | Path | None = None) -> Side:
    """Parse a side spec (see the module docstring); raises :class:`SideError` naming what is wrong.

    ``repo``: the git repository of ``git:`` sides (default: this package's checkout).
    """
    text = spec.strip()
    if text == "ours" or text.startswith("ours:"):
        options = {}
        body = text[5:]
        for item in filter(None, body.split(",")):
            key, sep, value = item.partition("=")
            key = key.strip().replace("_", "-")
            if not sep or key not in OURS_OPTIONS:
                known = ", ".join(f"{k}={'|'.join(v)}" for k, v in OURS_OPTIONS.items())
                raise SideError(f"side {spec!r}: unknown option {item!r}; use {known}")
            if value.strip() not in OURS_OPTIONS[key]:
                raise SideError(f"side {spec!r}: {key}={value!r}; use one of {', '.join(OURS_OPTIONS[key])}")
            options[key] = value.strip()
        return Side(spec, "ours", options)
    if text in ("stock-im", "accel-im"):
        return Side(spec, text)
    if text.startswith("recorded:") or (Path(text) / RECORDING).is_file():
        path = Path(text[len("recorded:"):] if text.startswith("recorded:") else text)
        if not (path / RECORDING).is_file():
            raise SideError(f"side {spec!r}: no recording at {path / RECORDING} (make one with inference-accel parity SIDE --record {path})")
        return Side(spec, "recorded", path=path)
    if text.startswith("venv:"):
        venv, _, inner = text[5:].partition("@")
        inner = inner or "ours"
        python = Path(venv) / "bin" / "python"
        if not python.is_file():
            raise SideError(f"side {spec!r}: no python at {python}")
        if parse_side(inner).kind in ("recorded", "venv", "git"):
            raise SideError(f"side {spec!r}: the side run in a venv must be ours..., stock-im or accel-im")
        return Side(spec, "venv", path=Path(venv), inner=inner)
    if text.startswith("git:"):
        from inference_accel.ab.git_side import split_git_spec

        ref, inner = split_git_spec(text[4:])
        parse_side(inner)  # a bad inner side fails here, before any build
        return Side(spec, "git", inner=inner, ref=ref, repo=None if repo is None else Path(repo))
    raise SideError(
        f"unknown side {spec!r}; use ours[:preproc=..,postproc=..], stock-im, accel-im, recorded:DIR, "
        "venv:PATH[@SIDE] or git:REF[@SIDE]"
    )


# -- inputs ------------------------------------------------------------------
def load_frames(source: str | None, limit: int | None) -> tuple[list[np.ndarray], str]:
    """BGR frames of a folder of images, one image, a video or a sample name (default: the sample video)."""
    from inference_accel import media

    if source is not None and Path(source).is_dir():
        files = sorted(p for p in Path(source).iterdir() if p.suffix.lower() in media.IMAGE_SUFFIXES)
        if not files:
            raise SideError(f"--input {source}: no images ({', '.join(sorted(media.IMAGE_SUFFIXES))}) in this folder")
        files = files[:limit] if limit else files
        return [media.read_image(p) for p in files], str(source)
    path = media.resolve_source(source)
    if path.suffix.lower() in media.IMAGE_SUFFIXES:
        return [media.read_image(path)], str(path)
    return list(media.VideoFrames(path, limit=limit)), str(path)


# -- recordings ----------------------------------------------------------------
def detections_to_record(index: int, detections: sv.Detections, image_hw: tuple[int, int]) -> dict:
    from inference_accel.ab.compare import as_compact
    from inference_accel.masks.coco_rle import to_coco_rle

    masks = as_compact(detections, image_hw)
    rles = None
    if masks is not None:
        rles = [r["counts"].decode("ascii") for r in to_coco_rle(masks)] if len(masks) else []
    return {
        "frame": int(index),
        "image_hw": [int(image_hw[0]), int(image_hw[1])],
        "xyxy": np.asarray(detections.xyxy, np.float64).reshape(-1, 4).tolist(),
        "confidence": None if detections.confidence is None else np.asarray(detections.confidence, np.float64).tolist(),
        "class_id": None if detections.class_id is None else np.asarray(detections.class_id, np.int64).tolist(),
        "masks": rles,
    }


def record_to_detections(record: dict) -> sv.Detections:
    from inference_accel.masks.coco_rle import from_coco_rle

    hw = tuple(record["image_hw"])
    xyxy = np.asarray(record["xyxy"], np.float64).reshape(-1, 4)
    mask = None
    if record.get("masks") is not None:
        mask = from_coco_rle([{"size": list(hw), "counts": c} for c in record["masks"]], hw)
    return sv.Detections(
        xyxy=xyxy,
        confidence=None if record.get("confidence") is None else np.asarray(record["confidence"], np.float64),
        class_id=None if record.get("class_id") is None else np.asarray(record["class_id"], np.int64),
        mask=mask,
    )


def read_recording(path: Path) -> list[sv.Detections]:
    with open(Path(path) / RECORDING) as handle:
        return [record_to_detections(json.loads(line)) for line in handle if line.strip()]


class Recorder:
    """Writes a recording as the frames come (``None`` path: does nothing)."""

    def __init__(self, path: Path | None, meta: dict):
        self.handle = None
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            (path / "side.json").write_text(json.dumps(meta, indent=1))
            self.handle = open(path / RECORDING, "w")

    def write(self, index: int, detections: sv.Detections, image_hw) -> None:
        if self.handle is not None:
            self.handle.write(json.dumps(detections_to_record(index, detections, image_hw)) + "\n")
            self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


# -- running sides -------------------------------------------------------------
@dataclass
class RunSettings:
    model: str | None = None
    device: str | None = None
    threshold: float = 0.4
    max_detections: int = 300
    resize_mode: str | None = None
    source: str | None = None
    frames: int | None = None


def _ours(side: Side, frames: list[np.ndarray], settings: RunSettings) -> Iterator[sv.Detections]:
    from inference_accel.flags import resolve_flags
    from inference_accel.pipeline import SegmentationPipeline

    o = side.options
    pick = lambda key, on: None if key not in o else o[key] == on  # noqa: E731
    flags = resolve_flags(
        preproc_fast=pick("preproc", "fast"),
        postproc_fast=pick("postproc", "fast"),
        cuda_graphs=pick("cuda-graphs", "on"),
        pipeline_depth=int(o["depth"]) if "depth" in o else None,
    )
    pipeline = SegmentationPipeline(
        settings.model, device=o.get("device", settings.device), flags=flags, threshold=settings.threshold,
        max_detections=settings.max_detections, resize_mode=settings.resize_mode, build_response=False,
    )
    for result in pipeline.run(frames):
        yield result.detections


def inference_models_package(model: str | None, workdir: Path) -> Path:
    """A package directory ``AutoModel.from_pretrained`` loads: ``model`` itself, or the ONNX wrapped as one."""
    from inference_accel.models.source import resolve_model

    if model is not None and Path(model).is_dir():
        return Path(model)
    source = resolve_model(model)
    onnx_path = Path(source.path)
    if onnx_path.suffix.lower() != ".onnx":
        raise SideError(f"--model {model}: inference-models sides need an .onnx file or a package directory")
    import onnx

    dims = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    input_hw = (int(dims[2].dim_value), int(dims[3].dim_value))
    names = list(source.class_names or [])
    if not names:
        classes = source.num_classes or 91
        names = [f"c{i}" for i in range(classes)]
    package = workdir / "package"
    package.mkdir(parents=True, exist_ok=True)
    (package / "class_names.txt").write_text("\n".join(names) + "\n")
    network_input = {
        "training_input_size": {"height": input_hw[0], "width": input_hw[1]},
        "dynamic_spatial_size_supported": False, "color_mode": "rgb",
        "resize_mode": source.resize_mode or "stretch", "input_channels": 3, "scaling_factor": 255,
        "normalization": [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]],
    }
    (package / "inference_config.json").write_text(json.dumps({"network_input": network_input}))
    (package / "model_config.json").write_text(json.dumps(
        {"model_architecture": "rfdetr", "task_type": "instance-segmentation", "backend_type": "onnx"}))
    link = package / "weights.onnx"
    if not link.exists():
        link.symlink_to(onnx_path.resolve())
    return package


def prepare_git(side: Side) -> None:
    """Resolve a git side's ref and build (or reuse) its venv; sets ``side.commit`` and ``side.path``."""
    if side.path is None:
        from inference_accel.ab.git_side import prepare

        build = prepare(side.ref, side.repo)
        side.commit, side.path = build.commit, build.venv


def preflight(side: Side) -> None:
    """Fail early (before any side runs) when ``side`` cannot run in this environment (git: builds its venv)."""
    if side.kind == "git":
        prepare_git(side)
        return
    if side.kind not in ("stock-im", "accel-im"):
        return
    from inference_accel.integrations import require_inference_models

    try:
        require_inference_models()
    except (MissingDependencyError, InferenceAccelError) as exc:
        raise SideError(
            f"side {side.spec}: {exc}. Run it where inference-models is installed: the integration venv "
            f"(bash .ci/integration_env.sh .venv-integration), e.g. as the side venv:.venv-integration@{side.kind}"
        ) from None


def _inference_models(side: Side, frames: list[np.ndarray], settings: RunSettings,
                      tensors: list | None = None) -> Iterator[sv.Detections]:
    preflight(side)
    from inference_models import AutoModel

    with tempfile.TemporaryDirectory(prefix="parity-im-") as tmp:
        package = inference_models_package(settings.model, Path(tmp))
        providers = ["CPUExecutionProvider"] if settings.device in (None, "cpu") else None
        kwargs = {"onnx_execution_providers": providers} if providers else {}
        model = AutoModel.from_pretrained(str(package), **kwargs)
        if side.kind == "accel-im":
            from inference_accel.integrations.inference_models import accelerate

            model = accelerate(model)
        for frame in frames:
            if tensors is not None:  # the class's own preprocessing output (an extra pre_process call)
                tensors.append(np.asarray(model.pre_process(frame)[0].detach().cpu().float().numpy()))
            out = model(frame, confidence=settings.threshold, mask_format="rle")[0]
            try:
                yield out.to_supervision(compact=True)
            except TypeError:
                yield out.to_supervision()


def _absolute_if_path(value: str) -> str:
    """An existing relative path made absolute (the subprocess runs elsewhere); names stay as they are."""
    return str(Path(value).resolve()) if Path(value).exists() else value


def _venv(side: Side, frames: list[np.ndarray], settings: RunSettings) -> Iterator[sv.Detections]:
    with tempfile.TemporaryDirectory(prefix="parity-venv-") as tmp:
        command = [str(side.path / "bin" / "python"), "-m", "inference_accel.cli", "parity", side.inner,
                   "--record", tmp, "--quiet", "--threshold", str(settings.threshold),
                   "--max-detections", str(settings.max_detections)]
        for option, value in (("--model", settings.model), ("--device", settings.device),
                              ("--resize-mode", settings.resize_mode), ("--input", settings.source),
                              ("--frames", settings.frames)):
            if value is not None:
                command += [option, _absolute_if_path(str(value)) if option in ("--model", "--input") else str(value)]
        # cwd: a neutral folder, since ``python -m`` puts the working directory first on sys.path and a
        # checkout there would shadow the venv's own inference_accel
        done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), cwd=tmp)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise SideError(f"side {side.spec}: the subprocess failed (exit {done.returncode}): {tail}")
        yield from read_recording(Path(tmp))


def exposes_preprocessing(side: Side) -> bool:
    """Whether this tool can read ``side``'s preprocessed input tensor (inference-models sides run here)."""
    return side.kind in ("stock-im", "accel-im")


def run_side(side: Side, frames: list[np.ndarray], settings: RunSettings,
             tensors: list | None = None) -> Iterator[sv.Detections]:
    """Detections of ``side`` on ``frames``, one per frame, in order (``tensors``: collects its inputs)."""
    if side.kind == "ours":
        return _ours(side, frames, settings)
    if side.kind in ("stock-im", "accel-im"):
        return _inference_models(side, frames, settings, tensors)
    if side.kind == "venv":
        return _venv(side, frames, settings)
    if side.kind == "git":
        prepare_git(side)
        return _venv(side, frames, settings)
    recorded = read_recording(side.path)
    if len(recorded) < len(frames):
        raise SideError(f"side {side.spec}: the recording has {len(recorded)} frame(s), the inputs {len(frames)}")
    return iter(recorded[: len(frames)])


def collect(side: Side, frames: list[np.ndarray], settings: RunSettings, record: Path | None = None,
            progress: bool = True, tensors: list | None = None) -> list[sv.Detections]:
    """Run ``side`` on every frame (a tqdm bar on stderr), recording into ``record`` when given."""
    from tqdm import tqdm

    from inference_accel import __version__

    meta = {"side": side.spec, "commit": side.commit, "inference_accel": __version__, "python": sys.executable, "source": settings.source, "model": settings.model,
            "threshold": settings.threshold, "frames": len(frames)}
    recorder = Recorder(record, meta)
    out = []
    try:
        bar = tqdm(total=len(frames), desc=side.spec, unit="frame", file=sys.stderr, disable=not progress)
        for index, detections in enumerate(run_side(side, frames, settings, tensors)):
            if index >= len(frames):
                break
            out.append(detections)
            recorder.write(index, detections, frames[index].shape[:2])
            bar.update(1)
        bar.close()
    finally:
        recorder.close()
    return out
