"""Build an RF-DETR segmentation model with ``rfdetr`` and export it to ONNX.

With a checkpoint the model loads it. Without one no network is reachable to
fetch the published weights, so the model is built from **random
initialisation** and we say so plainly. Random weights give boxes equal to
the anchors and almost no score above threshold, which would leave the mask
path unexercised; so a random model is *demo-calibrated*: the last box layer
gets small random weights and the class bias is shifted so that about
``DEMO_DETECTIONS`` (query, class) pairs score above 0.5 on a photograph.
Its detections are meaningless; its tensors have the real shapes, the real
graph and the real cost.

The ONNX file has one input ``input`` (1, 3, S, S) and outputs ``dets``
(1, Q, 4), ``labels`` (1, Q, 91) and ``masks`` (1, Q, S/4, S/4); with
``dynamic_batch=True`` the leading 1 is a symbolic batch dimension instead
(rfdetr's own ``dynamic_batch`` export), so one engine call takes N frames
(``SegmentationPipeline(batch_size=N)``). A JSON
sidecar beside it records the size, the classes and whether the weights are
random.

>>> from inference_accel.models.export import sidecar_path
>>> sidecar_path("/tmp/rfdetr-seg-nano.onnx").name
'rfdetr-seg-nano.json'
"""

from __future__ import annotations

import json
import math
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from inference_accel import extras
from inference_accel.errors import InferenceAccelError, ModelNotFoundError
from inference_accel.models.cache import cached_model_path
from inference_accel.models.specs import COCO_CLASS_NAMES, SEG_MODELS

logger = logging.getLogger("inference_accel")

DEMO_DETECTIONS = 20
DEMO_SEED = 0


def sidecar_path(onnx_path: str | os.PathLike[str]) -> Path:
    return Path(onnx_path).with_suffix(".json")


# -- third-party output of a build and export ---------------------------------
# rfdetr and torch print a wall of warnings and log lines while we build and
# export a model, none of them actionable for our users (we say what matters
# ourselves: random weights and why). They are silenced only around our calls
# into them (:func:`quiet_third_party`), never process-wide; ``-v`` shows them.
QUIET_LOGGERS = ("rf-detr",)  # rfdetr's own logger (INFO to stdout, WARNING to stderr)
_show_third_party = False


def show_third_party_output(show: bool = True) -> None:
    """Let :func:`quiet_third_party` pass everything through (the CLI's ``-v``)."""
    global _show_third_party
    _show_third_party = bool(show)


class _ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Hide the third-party warnings and log lines that building/exporting a model triggers, in this scope only.

    Hidden: torch.jit's ``TracerWarning`` (one per Python branch of rfdetr's
    forward) and torch's ``FutureWarning`` (``torch.jit.script`` is
    deprecated, raised while rfdetr is imported; the legacy ONNX exporter);
    rfdetr's ``PretrainWeightsCompatibilityWarning`` (``pretrain_weights=None``:
    we say ourselves that the weights are random); records below ERROR of
    rfdetr's ``rf-detr`` logger (positional-encoding and patch-size notes,
    "Exporting model to onnx format"). Errors still show. The logger is
    quieted with a filter rather than its level because rfdetr sets that
    level itself when it is first imported, which may happen inside this
    scope. Everything passes through after :func:`show_third_party_output`.
    """
    if _show_third_party:
        yield
        return
    import torch

    quiet = _ErrorsOnly()
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
        # rfdetr.config.PretrainWeightsCompatibilityWarning (a UserWarning
        # subclass), matched by message so rfdetr need not be imported here.
        warnings.filterwarnings("ignore", message=r".* was instantiated with pretrain_weights=None", category=UserWarning)
        for log in loggers:
            log.addFilter(quiet)
        try:
            yield
        finally:
            for log in loggers:
                log.removeFilter(quiet)


def _build(name: str, checkpoint: str | None):
    import torch
    rfdetr = extras.require("rfdetr", "export", "building an RF-DETR model")

    spec = SEG_MODELS[name]
    model_class = getattr(rfdetr, spec.rfdetr_class)
    torch.manual_seed(DEMO_SEED)
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise ModelNotFoundError(f"checkpoint not found: {checkpoint}")
        return model_class(pretrain_weights=str(checkpoint))
    return model_class(pretrain_weights=None)


def demo_calibrate(model, input_size: int) -> float:
    """Give a random-weight model varied boxes and a few confident detections.

    Returns the class-bias shift applied.
    """
    import cv2
    import numpy as np
    import torch
    skdata = extras.require("skimage.data", "demo", "demo-calibrating a random-weight model")

    from inference_accel.preprocess.reference import preprocess_reference

    net = model.model.model.eval()
    generator = torch.Generator().manual_seed(DEMO_SEED)
    last_box_layer = net.bbox_embed.layers[-1]
    with torch.no_grad():
        last_box_layer.weight.copy_(
            torch.randn(last_box_layer.weight.shape, generator=generator) * 0.02
        )
        last_box_layer.bias.copy_(torch.randn(last_box_layer.bias.shape, generator=generator) * 0.5)
        photo = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
        x, _ = preprocess_reference(np.ascontiguousarray(photo), (input_size, input_size))
        logits = net(x)["pred_logits"].flatten()
        kth = torch.topk(logits, DEMO_DETECTIONS).values[-1].item()
        shift = -kth + math.log(0.45 / 0.55)  # k-th best pair scores 0.45
        net.class_embed.bias.add_(shift)
    return shift


def pin_output_dims(path: Path, num_queries: int, mask_size: int) -> None:
    """Write the static per-frame output dims into a dynamic-batch export, in place.

    rfdetr's ``dynamic_batch`` export leaves the masks' query count and side
    symbolic (``masks (batch, Addlabels_dim_1, ...)``), but the engines need
    them static to allocate their buffers: the batch stays symbolic and
    every other dim of ``dets`` (Q, 4), ``labels`` (Q, C) and ``masks``
    (Q, S/4, S/4) is set to its known value. A dim that is already static and
    different is an error (not the model we think).
    """
    onnx = extras.require("onnx", "export", "fixing a dynamic-batch export's output shapes")

    model = onnx.load(str(path), load_external_data=False)
    expected = {"dets": (num_queries, 4), "labels": (num_queries, None), "masks": (num_queries, mask_size, mask_size)}
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        for dim, value in zip(list(dims)[1:], expected.get(output.name, ())):
            if value is None:
                continue
            if dim.HasField("dim_value") and dim.dim_value != value:
                raise InferenceAccelError(
                    f"{path}: output {output.name} has a static dim {dim.dim_value} where {value} was expected"
                )
            dim.Clear()
            dim.dim_value = value
    onnx.save(model, str(path))


def export_model(
    name: str = "seg-nano",
    checkpoint: str | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    demo_calibration: bool = True,
    dynamic_batch: bool = False,
) -> Path:
    """Export RF-DETR ``name`` to ONNX and return the file's path.

    ``output`` defaults to the cached path (see :mod:`~inference_accel.models.cache`).
    ``dynamic_batch``: a symbolic batch dimension instead of a fixed 1.
    """
    if name not in SEG_MODELS:
        raise InferenceAccelError(f"unknown model {name!r}; choose one of {sorted(SEG_MODELS)}")
    spec = SEG_MODELS[name]
    destination = Path(output) if output is not None else cached_model_path(name, dynamic_batch=dynamic_batch)
    if destination.suffix.lower() != ".onnx":
        # Its sidecar is the same path with .json: any other suffix could put both in one file.
        raise InferenceAccelError(f"export destination {destination} must end in .onnx (its .json sidecar goes beside it)")
    random_init = checkpoint is None
    logger.info("building %s with rfdetr and exporting it to ONNX (a minute or more on a small CPU)", name)
    if random_init:
        logger.warning(
            "%s gets RANDOM weights: there is no network here to fetch the published checkpoint, so its "
            "detections are meaningless%s. For real weights: inference-accel export --model %s --checkpoint FILE.pth",
            name,
            " (demo-calibrated so that some appear)" if demo_calibration else "",
            name,
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    with quiet_third_party():
        model = _build(name, checkpoint)
        shift = demo_calibrate(model, spec.input_size) if random_init and demo_calibration else None
        with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
            model.export(output_dir=scratch, verbose=False, dynamic_batch=dynamic_batch)
            produced = sorted(Path(scratch).glob("*.onnx"))
            if not produced:
                raise InferenceAccelError(f"rfdetr export wrote no .onnx file into {scratch}")
            if dynamic_batch:
                pin_output_dims(produced[0], spec.num_queries, spec.mask_size)
            shutil.move(str(produced[0]), destination)
    logger.debug("rfdetr exported %s -> %s (class-bias shift %s)", name, destination, shift)
    sidecar = {
        "model": name,
        "input_size": spec.input_size,
        "num_queries": spec.num_queries,
        "class_names": list(COCO_CLASS_NAMES),
        "random_init": random_init,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "demo_class_bias_shift": shift,
        "dynamic_batch": bool(dynamic_batch),
    }
    sidecar_path(destination).write_text(json.dumps(sidecar, indent=2))
    return destination
