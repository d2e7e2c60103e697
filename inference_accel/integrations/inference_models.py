"""Drop-in accelerated RF-DETR instance segmentation for Roboflow's ``inference-models``.

``inference-models`` (0.39.x) is the model engine of Roboflow's ``inference``
server. Its RF-DETR instance-segmentation classes
(``RFDetrForInstanceSegmentationOnnx`` / ``...TRT``) spend most of a CPU frame
outside the network: a PIL resize chain before it, and a dense full-frame
``torchvision`` mask resize, threshold and RLE encoding after it. The classes
here are subclasses of the stock ones with the same public interface
(``pre_process``, ``forward``, ``post_process``, ``infer``, ``__call__``, the
same keyword arguments, ``InstanceDetections`` with dense masks or
``InstancesRLEMasks``) and the same outputs, bit for bit:

- **preprocessing**: ``inference_accel.preprocess.api.preprocess_into``, byte-exact
  with the installed Pillow's resize and bit-exact with ``to_tensor`` +
  ``normalize``, written straight into the batch tensor, with the package's
  scaling factor, mean/std and stock's channel-swap rule
  (:func:`~inference_accel.preprocess.normalization.from_stock_config`). The
  package options (static crop, grayscale, contrast) run the stock code first.
  Anything else (tensor inputs, the two-step dataset-version resize, a
  requested ``image_size``, our flag off) runs the stock ``pre_process``.
- **postprocessing**: the stock selection (top-k, class remapping, per-class
  thresholds, sort, ``max_detections``) and box alignment, with the mask
  upsampling replaced by :mod:`inference_accel.integrations.stock_masks`: the
  stock ``resize(BILINEAR, antialias) > 0`` reproduced exactly and evaluated
  only where a mask can be positive, by the compiled executor
  (:mod:`~inference_accel.integrations.stock_masks_native`: every dense byte
  written once, COCO RLE strings emitted directly, masks over the worker
  threads). Without it (not built, or ``INFERENCE_ACCEL_POSTPROC_NATIVE=false``,
  said once) the numpy executor runs, except for dense grids under
  :data:`NUMPY_DENSE_MIN_AREA` pixels, where the stock torchvision resize
  itself is cheaper and runs instead (exact by definition).
  On a CUDA device the masks take the sparse run kernels in their stock
  mode (``TritonPostprocessor.launch_masks_batch``: torch CUDA's own
  antialiased order, fixed buffers, one copy of the column runs back; dense
  masks are decoded from the runs, RLE strings built from them directly),
  after a first-use self-check of that order against torchvision on the
  device (written, not yet run on a GPU); a frame whose runs overflow the
  buffer takes the dense-crop kernel of
  :mod:`inference_accel.postprocess.stock_triton` (same arithmetic, said
  once). The work goes on the model's post-processing stream, as stock's
  does (:func:`_post_process_scope`). Falls back to the stock mask code
  (exact by construction) for: masks not float32, a CUDA device without
  Triton or failing the self-check, a downsampling resize (frames smaller than the mask grid),
  a torch whose resize arithmetic the start-up probe does not recognise, and
  ``INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED=false``.
- every fallback is logged once with its reason, and
  :attr:`AcceleratedRFDetrSegMixin.acceleration` says what the last call ran.

Extra: results are :class:`AcceleratedInstanceDetections`, whose
``to_supervision(compact=True)`` returns ``sv.Detections`` carrying an
``sv.CompactMask`` (crop-scoped RLE; no dense (N, H, W) stack is built).

Three ways to turn it on (supported: ``inference-models>=0.39,<0.40``,
checked at run time):

1. one loaded model: ``accelerate(model)`` (swaps its class in place; ``restore(model)`` undoes it);
2. every model loaded afterwards: ``register()`` puts the accelerated classes in
   ``REGISTERED_MODELS`` for the RF-DETR instance-segmentation ONNX and TRT
   keys, so ``AutoModel.from_pretrained`` returns them (``unregister()`` undoes it);
3. a server without code changes: ``python -m inference_accel.integrations install-hook``
   writes a one-line ``.pth`` into the environment; with
   ``INFERENCE_ACCEL_PATCH_INFERENCE_MODELS=1`` in the server's environment it
   registers the classes the moment ``inference_models`` loads its registry
   (:mod:`inference_accel.integrations.autopatch`). ``inference-models`` has no
   plugin or entry-point mechanism for model classes (0.39.6), and the registry
   dict with its ``(architecture, task, backend)`` keys is the one interface this
   relies on.

This module imports without ``inference-models``; every entry point
(:func:`accelerate`, :func:`register`, the classes) raises
:class:`~inference_accel.integrations.InferenceModelsMissingError` when it is
not installed and :class:`~inference_accel.integrations.UnsupportedInferenceModelsVersionError`
outside the supported range.

>>> sorted(ACCELERATED_NAMES.values())
['AcceleratedRFDetrForInstanceSegmentationOnnx', 'AcceleratedRFDetrForInstanceSegmentationTRT']
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import logging
import threading
import types
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from inference_accel import dispatch
from inference_accel.flags import POSTPROC_FLAG, PREPROC_FLAG, read_flags
from inference_accel.integrations import (
    InferenceModelsMissingError,
    UnsupportedInferenceModelsVersionError,
    installed_version,
    require_inference_models,
    stock_masks,
    stock_masks_native,
    version_problem,
)
from inference_accel.postprocess import crop_rle

logger = logging.getLogger("inference_accel")

ARCHITECTURE = "rfdetr"
TASK = "instance-segmentation"
STOCK_CLASSES = {
    "onnx": (
        "inference_models.models.rfdetr.rfdetr_instance_segmentation_onnx",
        "RFDetrForInstanceSegmentationOnnx",
    ),
    "trt": (
        "inference_models.models.rfdetr.rfdetr_instance_segmentation_trt",
        "RFDetrForInstanceSegmentationTRT",
    ),
}
ACCELERATED_NAMES = {backend: f"Accelerated{name}" for backend, (_, name) in STOCK_CLASSES.items()}
OURS, STOCK = "inference_accel", "stock"
_DEFAULT = object()  # "the stock default" (read from inference-models at call time)


@functools.lru_cache(maxsize=None)
def _stock() -> types.SimpleNamespace:
    """The inference-models symbols we use (checked version, imported once) and our result class."""
    version = require_inference_models()
    import supervision as sv
    from inference_models import InstanceDetections, InstancesRLEMasks
    from inference_models.configuration import (
        INFERENCE_MODELS_RFDETR_DEFAULT_CONFIDENCE,
        INFERENCE_MODELS_RFDETR_DEFAULT_MAX_DETECTIONS,
    )
    from inference_models.entities import ImageDimensions
    from inference_models.models.common.roboflow.model_packages import (
        ColorMode,
        PreProcessingMetadata,
        ResizeMode,
    )
    from inference_models.models.common.roboflow.post_processing import (
        ConfidenceFilter,
        _align_boxes_to_mask_grid,
        align_instance_segmentation_results,
        align_instance_segmentation_results_to_rle_masks,
        finalize_instance_segmentation_boxes,
        resolve_mask_frame_size,
        resolve_mask_output_size,
        resolve_mask_target_size,
    )
    from inference_models.models.common.roboflow.pre_processing import apply_pre_processing_to_numpy_image
    from inference_models.models.common.streams import use_cuda_stream
    from inference_models.models.rfdetr.post_processor import select_topk_predictions

    namespace = types.SimpleNamespace(**{k: v for k, v in locals().items() if k != "sv"})
    namespace.version = version
    namespace.AcceleratedInstanceDetections = _detections_class(InstanceDetections, InstancesRLEMasks, sv)
    return namespace


def _detections_class(InstanceDetections, InstancesRLEMasks, sv):
    @dataclasses.dataclass
    class AcceleratedInstanceDetections(InstanceDetections):
        """``InstanceDetections`` whose ``to_supervision`` can return an ``sv.CompactMask``.

        The stock fields only (equal to the stock result field for field).
        ``to_supervision()`` is the stock conversion (dense (N, H, W) masks);
        ``to_supervision(compact=True)`` gives ``sv.Detections`` whose ``mask``
        is an ``sv.CompactMask`` on the image grid: from RLE masks by interval
        arithmetic (no dense mask at all), from dense or reduced-grid masks one
        mask at a time (never an (N, H, W) stack). Same geometry as the stock
        conversion (a reduced grid is scaled back with nearest neighbour).
        """

        @classmethod
        def from_stock(cls, detections):
            if isinstance(detections, cls):
                return detections
            values = {f.name: getattr(detections, f.name) for f in dataclasses.fields(InstanceDetections)}
            return cls(**values)

        def to_supervision(self, compact: bool = False):  # type: ignore[override]
            if not compact:
                return super().to_supervision()
            image_hw = tuple(int(v) for v in self._image_size())
            frame_hw = tuple(int(v) for v in (self.mask_frame_size or image_hw))
            mask_hw = tuple(int(v) for v in (self.mask_size or frame_hw))
            xyxy = self.xyxy.cpu().numpy()
            if mask_hw != frame_hw:
                fh, fw = frame_hw
                mh, mw = mask_hw
                xyxy = xyxy * np.array([fw / mw, fh / mh, fw / mw, fh / mh], dtype=np.float32)
            if isinstance(self.mask, InstancesRLEMasks) and mask_hw == frame_hw == image_hw:
                from inference_accel.masks.coco_rle import from_coco_rle

                compact = from_coco_rle(self.mask.to_coco_rle_masks(), image_hw)
            else:
                runs = [_image_grid_crop(mask, frame_hw) for mask in self._single_masks()]
                compact = crop_rle.build_compact_mask(runs, image_hw)
            return sv.Detections(
                xyxy=xyxy,
                class_id=self.class_id.cpu().numpy(),
                confidence=self.confidence.cpu().numpy(),
                mask=compact,
            )

        def _single_masks(self):
            """Each mask as a dense (h, w) bool array on the mask grid, one at a time."""
            if isinstance(self.mask, InstancesRLEMasks):
                from pycocotools import mask as mask_utils

                for rle in self.mask.to_coco_rle_masks():
                    yield mask_utils.decode(rle).astype(bool)
            else:
                for i in range(len(self)):
                    yield self.mask[i].cpu().numpy()

    AcceleratedInstanceDetections.__module__ = __name__
    return AcceleratedInstanceDetections


def _image_grid_crop(mask: np.ndarray, frame_hw):
    """One mask on its grid -> crop runs on the image grid (the stock ``to_supervision``'s
    geometry: nearest-neighbour to the frame extent, placed at the image origin)."""
    import cv2

    if tuple(mask.shape) != tuple(frame_hw):
        mask = cv2.resize(mask.astype(np.uint8), (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    return crop_rle.encode_dense_crop(mask)


def _note(model: Any, stage: str, implementation: str, reason: Optional[str]) -> None:
    model.__dict__.setdefault("_accel_last", {})[stage] = (implementation, reason)
    if reason is not None:
        dispatch.warn_once(
            f"inference_models:{stage}:{reason}",
            f"inference_models integration: {stage} runs the stock code ({reason})",
        )


def _frames_of(images) -> Optional[list]:
    """The input as a list of uint8 (H, W, 3) numpy frames, or None when it is anything else."""
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            frames = list(images)
        elif images.ndim == 3:
            frames = [images]
        else:
            return None
    elif isinstance(images, (list, tuple)) and images and all(isinstance(i, np.ndarray) for i in images):
        frames = list(images)
    else:
        return None
    for frame in frames:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
            return None
    return frames


class AcceleratedRFDetrSegMixin:
    """The accelerated ``pre_process`` / ``post_process`` and helpers.

    Not a base class: :func:`accelerated_class` copies these methods into a
    direct subclass of the stock class (so the layout is the stock one and
    :func:`accelerate` can swap ``__class__`` on a live model), with
    ``_accel_stock_class`` naming the stock class the fallbacks call.
    """

    _accel_stock_class: type

    @property
    def acceleration(self) -> dict:
        """What the last calls ran: ``{stage: (implementation, reason or None)}``."""
        return dict(self.__dict__.get("_accel_last", {}))

    # -- preprocessing ------------------------------------------------------------
    def _accel_preprocess_reason(self, images, input_color_format, image_size) -> Optional[str]:
        st = _stock()
        if not read_flags().preproc_fast:
            return f"{PREPROC_FLAG}=false"
        if getattr(self, "_fast_preprocess_enabled", False):
            return "the stock Triton preprocessing is enabled (its own numerics)"
        network_input = self._inference_config.network_input
        if network_input.input_channels != 3:
            return f"the network takes {network_input.input_channels} channels"
        if (
            network_input.dataset_version_resize_dimensions is not None
            and network_input.resize_mode != st.ResizeMode.STRETCH_TO
        ):
            return f"two-step {network_input.resize_mode.value} resize (dataset-version dimensions)"
        if network_input.training_input_size is None:
            return "the package declares no input size"
        if image_size is not None:
            wanted = (int(image_size), int(image_size)) if isinstance(image_size, (int, float)) else tuple(image_size)
            size = network_input.training_input_size
            if wanted != (size.width, size.height):
                return f"image_size {image_size} differs from the model input"
        if _frames_of(images) is None:
            return f"input is not uint8 HxWx3 numpy frame(s) ({type(images).__name__})"
        return None

    def pre_process(
        self,
        images: Union[torch.Tensor, List[torch.Tensor], np.ndarray, List[np.ndarray]],
        input_color_format=None,
        image_size: Optional[Tuple[int, int]] = None,
        pre_processing_overrides=None,
        **kwargs,
    ):
        reason = self._accel_preprocess_reason(images, input_color_format, image_size)
        if reason is None:
            result = self._accel_pre_process(images, input_color_format, pre_processing_overrides)
            if not isinstance(result, str):
                _note(self, "pre_process", OURS, None)
                return result
            reason = result
        _note(self, "pre_process", STOCK, reason)
        return self._accel_stock_class.pre_process(
            self,
            images,
            input_color_format=input_color_format,
            image_size=image_size,
            pre_processing_overrides=pre_processing_overrides,
            **kwargs,
        )

    def _accel_pre_process(self, images, input_color_format, pre_processing_overrides):
        """Package options (stock code), then our resize + normalisation into one batch tensor;
        returns (batch, metadata) or a reason string (the caller then runs the stock path)."""
        from inference_accel.preprocess.api import preprocess_into
        from inference_accel.preprocess.normalization import from_stock_config

        st = _stock()
        config = self._inference_config
        network_input = config.network_input
        color = st.ColorMode(input_color_format) if input_color_format is not None else None
        size = network_input.training_input_size
        target = st.ImageDimensions(width=size.width, height=size.height)
        prepared = []
        for frame in _frames_of(images):
            original = st.ImageDimensions(width=frame.shape[1], height=frame.shape[0])
            image, crop_offset = st.apply_pre_processing_to_numpy_image(
                image=frame,
                image_pre_processing=config.image_pre_processing,
                network_input_channels=network_input.input_channels,
                input_color_mode=color,
                pre_processing_overrides=pre_processing_overrides,
            )
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
                return f"the package options produce a {image.dtype} {image.shape} image"
            prepared.append((np.ascontiguousarray(image), original, crop_offset))
        # The package's scaling, mean/std and stock's channel-swap rule, exactly (tests/integration/test_normalization_stock.py).
        normalization = from_stock_config(
            network_input.scaling_factor, network_input.normalization, network_input.color_mode, color
        )
        device = self._accel_preprocess_device()
        batch = torch.empty((len(prepared), 3, target.height, target.width), dtype=torch.float32, device=device)
        metadata, paths = [], set()
        stream = getattr(self, "_pre_process_stream", None) if device.type == "cuda" else None
        with st.use_cuda_stream(stream):  # stock's pre-processing stream (None: the current one)
            for index, (image, original, crop_offset) in enumerate(prepared):
                _, path = preprocess_into(image, batch, index, mode="stretch", normalization=normalization)
                paths.add(path)
        _note(self, "pre_process_path", ", ".join(sorted(paths)) or "none", None)
        for image, original, crop_offset in prepared:
            after = st.ImageDimensions(width=image.shape[1], height=image.shape[0])
            metadata.append(
                st.PreProcessingMetadata(
                    pad_left=0,
                    pad_top=0,
                    pad_right=0,
                    pad_bottom=0,
                    original_size=original,
                    size_after_pre_processing=after,
                    inference_size=target,
                    scale_width=target.width / after.width,
                    scale_height=target.height / after.height,
                    static_crop_offset=crop_offset,
                )
            )
        return self._accel_to_device(batch, metadata)

    def _accel_preprocess_device(self) -> torch.device:
        """Where our preprocessing writes the batch: the model's CUDA device through the Triton kernel, else the CPU.

        On a CUDA model whose Triton preprocessing is available the frames
        go up as uint8 and the kernel writes the float batch on the device
        (the same bytes the CPU paths write: both equal Pillow's), instead of
        a float32 batch made on the CPU and uploaded.
        """
        if self._device.type != "cuda":
            return torch.device("cpu")
        from inference_accel.preprocess import api as pre_api

        verdicts = {v.implementation.name: v.reason for v in pre_api.describe(read_flags())}
        if verdicts.get(pre_api.TRITON, "not registered") is not None:
            return torch.device("cpu")
        return self._device

    def _accel_to_device(self, batch: torch.Tensor, metadata: list):
        """Move the CPU batch to the model's device on its pre-processing stream, as the stock classes do
        (a batch already there only waits for that stream)."""
        if batch.device.type != "cpu":
            stream = getattr(self, "_pre_process_stream", None)
            if stream is not None:
                stream.synchronize()
        elif self._device.type != "cpu":
            stream = self._pre_process_stream
            with _stock().use_cuda_stream(stream):
                batch = batch.to(device=self._device).contiguous()
            if stream is not None:
                stream.synchronize()
        if getattr(self, "_stream_pipeline_enabled", False):  # TRT with a depth-2 pipeline
            setattr(batch, "_pre_processing_meta", metadata)
        return batch, metadata

    # -- postprocessing -----------------------------------------------------------
    def _accel_postprocess_reason(self, model_results) -> Optional[str]:
        if not read_flags().postproc_fast:
            return f"{POSTPROC_FLAG}=false"
        try:
            bboxes, logits, masks = model_results
        except (TypeError, ValueError):
            return "model results are not (boxes, logits, masks)"
        if not isinstance(masks, torch.Tensor) or masks.ndim != 4:
            return "mask logits are not a (B, Q, h, w) tensor"
        if masks.dtype != torch.float32:
            return f"mask logits are {masks.dtype}, not float32"
        if masks.device.type == "cuda":
            return _cuda_masks_reason(masks.device)
        if masks.device.type != "cpu":
            return f"mask logits on {masks.device}: the stock code runs torch's {masks.device.type} kernel there"
        mode, why = stock_masks.kernel_check()
        if mode is None:
            return why
        return None

    def post_process(
        self,
        model_results,
        pre_processing_meta,
        confidence="default",
        mask_format="dense",
        max_detections: Optional[int] = _DEFAULT,  # type: ignore[assignment]
        masks_resolution_factor: float = 1.0,
        **kwargs,
    ) -> list:
        st = _stock()
        if max_detections is _DEFAULT:
            max_detections = st.INFERENCE_MODELS_RFDETR_DEFAULT_MAX_DETECTIONS
        reason = None
        if mask_format not in self.supported_mask_formats:
            reason = f"mask_format {mask_format!r} (the stock code raises the error)"
        if reason is None:
            reason = self._accel_postprocess_reason(model_results)
        if reason is not None:
            _note(self, "post_process", STOCK, reason)
            results = self._accel_stock_class.post_process(
                self,
                model_results,
                pre_processing_meta,
                confidence=confidence,
                mask_format=mask_format,
                max_detections=max_detections,
                masks_resolution_factor=masks_resolution_factor,
                **kwargs,
            )
            return [st.AcceleratedInstanceDetections.from_stock(r) for r in results]
        threshold = st.ConfidenceFilter(
            confidence=confidence,
            recommended_parameters=self.recommended_parameters,
            default_confidence=st.INFERENCE_MODELS_RFDETR_DEFAULT_CONFIDENCE,
        ).get_threshold(self.class_names)
        with _post_process_scope(self, model_results):
            bboxes, logits, masks = model_results
            probabilities = torch.nn.functional.sigmoid(logits)
            if isinstance(threshold, torch.Tensor):
                threshold = threshold.to(device=bboxes.device, dtype=probabilities.dtype)
            select = _select_dense if mask_format == "dense" else _select_rle
            results, notes = [], []
            for image_boxes, image_probabilities, image_masks, meta in zip(
                bboxes, probabilities, masks, pre_processing_meta
            ):
                confidence_values, classes, boxes_xyxy, queries = select(
                    image_boxes, image_probabilities, threshold, len(self.class_names), self._classes_re_mapping,
                    max_detections, meta,
                )
                result, note = _align(
                    boxes_xyxy, image_masks, queries, meta, masks_resolution_factor, mask_format, confidence_values,
                    classes,
                )
                results.append(result)
                notes.append(note)
        reasons = sorted({n for n in notes if n is not None})
        _note(self, "post_process", OURS if not reasons else STOCK, "; ".join(reasons) or None)
        return results


@contextlib.contextmanager
def _post_process_scope(model: Any, model_results):
    """Run our postprocessing where the stock one runs: on the model's post-processing stream.

    As stock's ``post_process`` does (ONNX and TRT classes of 0.39): on a
    CUDA model the work goes on ``_post_process_stream``, which first waits
    for the TensorRT outputs' produce event (the depth-2 pipeline hands
    outputs over before the engine finished), marks the outputs as used
    there, afterwards records the graph state's "outputs consumed" event (so
    the next replay may overwrite them), and is synchronised before the
    results are returned. On the CPU it is a no-op.
    """
    first = model_results[0] if isinstance(model_results, (tuple, list)) and model_results else None
    stream = getattr(model, "_post_process_stream", None) if getattr(first, "is_cuda", False) is True else None
    if stream is None:
        yield
        return
    produce_event = getattr(first, "_trt_produce_event", None)
    graph_state = getattr(first, "_trt_graph_state", None)
    with _stock().use_cuda_stream(stream):
        if produce_event is not None:
            stream.wait_event(produce_event)
        for element in model_results:
            element.record_stream(stream)
        yield
        if graph_state is not None:
            consumed = getattr(graph_state, "consumer_done_event", None)
            if consumed is None:
                consumed = torch.cuda.Event()
                graph_state.consumer_done_event = consumed
            consumed.record(stream)
    stream.synchronize()


# -- selection: the stock semantics of each mask format ---------------------------------------
def _boxes_xyxy(selected_cxcywh: torch.Tensor, meta) -> torch.Tensor:
    cxcy, wh = selected_cxcywh[:, :2], selected_cxcywh[:, 2:]
    pct = torch.cat([cxcy - 0.5 * wh, cxcy + 0.5 * wh], dim=-1)
    size = meta.nonsquare_intermediate_size or meta.inference_size
    scale = torch.tensor([size.width, size.height, size.width, size.height], device=selected_cxcywh.device)
    return pct * scale


def _select_dense(boxes, probabilities, threshold, num_classes, remapping, max_detections, meta):
    """The dense path's selection: top-k over (Q, C), remap or drop unnamed ids, threshold, sort, cap."""
    confidence, classes, boxes, queries = _stock().select_topk_predictions(logits_sigmoid=probabilities, bboxes_cxcywh=boxes)
    if remapping is not None:
        keep = torch.isin(classes, remapping.remaining_class_ids)
        classes = remapping.class_mapping[classes[keep]]
    else:
        keep = classes < num_classes
        classes = classes[keep]
    confidence, boxes, queries = confidence[keep], boxes[keep], queries[keep]
    passed = confidence > (threshold[classes.long()] if isinstance(threshold, torch.Tensor) else threshold)
    confidence, classes, boxes, queries = confidence[passed], classes[passed], boxes[passed], queries[passed]
    confidence, order = torch.sort(confidence, descending=True)
    classes, boxes, queries = classes[order], boxes[order], queries[order]
    if max_detections is not None:
        confidence, classes = confidence[:max_detections], classes[:max_detections]
        boxes, queries = boxes[:max_detections], queries[:max_detections]
    return confidence, classes, _boxes_xyxy(boxes, meta), queries


def _select_rle(boxes, probabilities, threshold, num_classes, remapping, max_detections, meta):
    """The RLE path's selection (its remapping and threshold lookup differ from the dense one)."""
    num_queries, num_logit_classes = probabilities.shape
    confidence, flat = torch.topk(probabilities.reshape(-1), num_queries)
    queries = flat // num_logit_classes
    classes = flat % num_logit_classes
    if remapping is not None:
        mapping = remapping.class_mapping
        if mapping.shape[0] >= num_logit_classes:
            classes = mapping[classes]
        else:
            mapped = torch.full_like(classes, -1)
            known = classes < mapping.shape[0]
            mapped[known] = mapping[classes[known]]
            classes = mapped
        named = classes >= 0
    else:
        named = classes < num_classes
    if isinstance(threshold, torch.Tensor):
        passed = confidence > threshold[classes.clamp(min=0, max=threshold.shape[0] - 1).long()]
    else:
        passed = confidence > threshold
    keep = named & passed
    confidence, classes, queries = confidence[keep], classes[keep], queries[keep]
    confidence, order = torch.sort(confidence, descending=True)
    classes, queries = classes[order], queries[order]
    if max_detections is not None:
        confidence, classes, queries = confidence[:max_detections], classes[:max_detections], queries[:max_detections]
    return confidence, classes, _boxes_xyxy(boxes[queries], meta), queries


# -- alignment: stock geometry, our masks -------------------------------------------------
def _padding(meta) -> Tuple[int, int, int, int]:
    return (meta.pad_left, meta.pad_top, meta.pad_right, meta.pad_bottom)


def _unpad(masks: torch.Tensor, padding, inference_size) -> torch.Tensor:
    """Remove the letterbox padding at mask scale (negative padding: zero logits added), as stock does."""
    pad_left, pad_top, pad_right, pad_bottom = padding
    _, mh, mw = masks.shape
    hs, ws = mh / inference_size.height, mw / inference_size.width
    top, bottom, left, right = round(hs * pad_top), round(hs * pad_bottom), round(ws * pad_left), round(ws * pad_right)
    if min(top, bottom, left, right) < 0:
        masks = torch.nn.functional.pad(
            masks, (abs(min(left, 0)), abs(min(right, 0)), abs(min(top, 0)), abs(min(bottom, 0))), "constant", 0
        )
        top, bottom, left, right = max(top, 0), max(bottom, 0), max(left, 0), max(right, 0)
        return masks[:, top : masks.shape[1] - bottom, left : masks.shape[2] - right]
    return masks[:, top : mh - bottom, left : mw - right]


def _canvas(meta, target_hw):
    """(needs_canvas, (canvas_h, canvas_w), (offset_y, offset_x)) of the stock alignment."""
    after, original, crop = meta.size_after_pre_processing, meta.original_size, meta.static_crop_offset
    needs = crop.offset_x > 0 or crop.offset_y > 0 or after != original
    th, tw = target_hw
    if not needs:
        return False, (th, tw), (0, 0)
    hs, ws = th / after.height, tw / after.width
    oy, ox = round(crop.offset_y * hs), round(crop.offset_x * ws)
    return True, (max(1, round(original.height * hs), oy + th), max(1, round(original.width * ws), ox + tw)), (oy, ox)


def _align(boxes_xyxy, image_masks, queries, meta, factor, mask_format, confidence, classes):
    """Boxes and masks of one image on the stock output grid; returns (detections, fallback reason)."""
    st = _stock()
    padding = _padding(meta)
    denorm = meta.nonsquare_intermediate_size or meta.inference_size
    geometry = dict(
        padding=padding,
        scale_width=meta.scale_width,
        scale_height=meta.scale_height,
        original_size=meta.original_size,
        size_after_pre_processing=meta.size_after_pre_processing,
        inference_size=denorm,
        static_crop_offset=meta.static_crop_offset,
        masks_resolution_factor=factor,
    )
    frame_size = tuple(st.resolve_mask_frame_size(meta))
    image_size = tuple(meta.original_size)
    n = int(queries.shape[0])
    reason, crops = None, None
    if n:
        selected = image_masks[queries]
        unpadded = _unpad(selected, padding, denorm)
        target = st.resolve_mask_target_size(
            mask_height=unpadded.shape[1],
            mask_width=unpadded.shape[2],
            size_after_pre_processing=meta.size_after_pre_processing,
            masks_resolution_factor=factor,
        )
        reason = stock_masks.unsupported_reason(tuple(unpadded.shape[1:]), tuple(target))
        if reason is None and _kernel_masks(unpadded):  # torch CUDA's order (inf/NaN included): the Triton kernels
            values = unpadded
        elif reason is None:
            values = unpadded.numpy()
            if not np.isfinite(values).all():
                reason = "non-finite mask logits"
    if reason is not None or n == 0:
        # stock masks for this image (exact by construction); also the no-detection case
        return _stock_align(boxes_xyxy, image_masks[queries], geometry, mask_format, confidence, classes, image_size, frame_size), reason
    needs_canvas, canvas_hw, (oy, ox) = _canvas(meta, target)
    boxes = st._align_boxes_to_mask_grid(
        boxes_xyxy,
        padding=padding,
        scale_width=meta.scale_width,
        scale_height=meta.scale_height,
        size_after_pre_processing=meta.size_after_pre_processing,
        target_size=tuple(target),
        canvas_size=canvas_hw,
        canvas_offset=(ox, oy),
    )
    if isinstance(values, torch.Tensor):  # CUDA: crops from the Triton kernel, on the host
        dense_masks, rle_counts = _cuda_dense_masks, _cuda_rle_counts
    else:
        dense_masks, rle_counts = _dense_masks, _rle_counts
    if mask_format == "dense":
        mask = dense_masks(values, tuple(target), canvas_hw, (oy, ox))
        mask_size = tuple(mask.shape[1:])
    else:
        height, width = int(canvas_hw[0]), int(canvas_hw[1])
        rles = [{"size": [height, width], "counts": c} for c in rle_counts(values, tuple(target), canvas_hw, (oy, ox))]
        mask = st.InstancesRLEMasks.from_coco_rle_masks(image_size=image_size, masks=rles, mask_size=(height, width))
        mask_size = mask.mask_size
        boxes = boxes.contiguous()
    return (
        st.AcceleratedInstanceDetections(
            xyxy=st.finalize_instance_segmentation_boxes(boxes, mask_size=mask_size, image_size=meta.original_size),
            confidence=confidence,
            class_id=classes.int(),
            mask=mask,
            image_size=image_size,
            mask_frame_size=frame_size,
        ),
        None,
    )


# Without the compiled executor, dense masks on a grid smaller than this many pixels are cheaper
# with the stock arithmetic itself (torchvision's resize on 2 threads, then > 0) than with the numpy
# executor: measured stock / numpy time 0.80x at 312x554 (quiet machine), 0.93x there, 1.42x at
# 480x854 and 2.0x at 720x1280 (loaded machine; 60 masks of seg-nano, random weights).
NUMPY_DENSE_MIN_AREA = 300_000


def _kernel_masks(logits: torch.Tensor) -> bool:
    """True when the masks take the Triton kernels (CUDA logits; the tests force it under the interpreter)."""
    return logits.is_cuda


def _native_mode() -> Optional[str]:
    """The stock chain (``"fma"`` / ``"plain"``) when the compiled executor runs, else None (said once)."""
    reason = stock_masks_native.native_reason()
    if reason is not None:
        dispatch.warn_once(
            f"inference_models:masks:{reason}",
            f"inference_models integration: masks run the numpy executor of stock_masks ({reason}; dense "
            f"grids under {NUMPY_DENSE_MIN_AREA} pixels: the stock torchvision resize, cheaper there)",
        )
        return None
    return stock_masks.kernel_check()[0]  # checked before the frame was taken (_accel_postprocess_reason)


def _dense_masks(values: np.ndarray, target, canvas_hw, offset) -> torch.Tensor:
    """(N, CH, CW) bool tensor: each mask's stock ``resize > 0`` at ``offset`` on the canvas, zeros elsewhere."""
    mode = _native_mode()
    if mode is None and target[0] * target[1] < NUMPY_DENSE_MIN_AREA:
        from torchvision.transforms import functional as TF

        mask = torch.zeros((values.shape[0], *canvas_hw), dtype=torch.bool)
        oy, ox = offset
        logits = torch.from_numpy(values)
        for start in range(0, values.shape[0], 32):  # the float32 working set stays 32 masks, as stock chunks it
            mask[start : start + 32, oy : oy + target[0], ox : ox + target[1]] = TF.resize(
                logits[start : start + 32], list(target), interpolation=TF.InterpolationMode.BILINEAR
            ).gt_(0.0)
        return mask
    if mode is None:
        return torch.from_numpy(stock_masks.paste_dense(stock_masks.threshold_upsampled(values, target), target, offset, canvas_hw))
    # Every byte is written once, its pages faulted in by one call first (the helper). torch.empty,
    # not numpy: numpy asks for transparent huge pages, which fault in cheaper (~28 vs ~60 ms of CPU
    # for one 1080p frame's 68 masks, ~140 MB) but stall 100-300 ms whenever the kernel must
    # compact memory to find them (THP defrag "madvise"): measured medians of post_process in the
    # interleaved benchmark loop 112-172 ms with numpy's allocation, 66-90 ms with torch's.
    mask = torch.empty((values.shape[0], *canvas_hw), dtype=torch.bool)
    stock_masks_native.threshold_dense(values, target, mode, canvas_hw, offset, out=mask.numpy())
    return mask


def _rle_counts(values: np.ndarray, target, canvas_hw, offset) -> list:
    """Each mask's COCO compressed counts (bytes, pycocotools' encoding) over the canvas."""
    mode = _native_mode()
    if mode is None:
        from pycocotools import mask as mask_utils

        height, width = int(canvas_hw[0]), int(canvas_hw[1])
        crops = stock_masks.threshold_upsampled(values, target, column_major=True)
        objects = [{"size": [height, width], "counts": stock_masks.coco_counts(c, canvas_hw, offset)} for c in crops]
        return [rle["counts"] for rle in mask_utils.frPyObjects(objects, height, width)]
    return stock_masks_native.threshold_rle(values, target, mode, canvas_hw, offset)


_cuda_reasons: dict = {}
_cuda_lock = threading.Lock()


def _cuda_masks_reason(device: torch.device) -> Optional[str]:
    """None when the stock-mask Triton kernel reproduces torchvision's resize on ``device`` (checked once).

    The first mask frame on a CUDA device runs :func:`stock_triton.device_self_check`:
    probes whose signs depend on the arithmetic order, against torchvision's
    own CUDA resize. Without Triton, or when any probe pixel differs, the
    stock code runs, with the reason. Not yet run on a GPU.
    """
    key = str(device)
    with _cuda_lock:
        if key in _cuda_reasons:
            return _cuda_reasons[key]
    try:
        import triton  # noqa: F401

        from inference_accel.postprocess import stock_triton

        reason = stock_triton.device_self_check(device)
    except ImportError as exc:
        reason = f"CUDA mask logits need Triton for the stock-mask kernel ({exc})"
    except Exception as exc:  # noqa: BLE001 - a kernel that cannot run is a fallback with its reason
        reason = f"the stock-mask Triton kernel failed its self-check on {device} ({type(exc).__name__}: {exc})"
    with _cuda_lock:
        _cuda_reasons[key] = reason
    return reason


_run_postprocessor = None


def _cuda_mask_intervals(logits: torch.Tensor, target, canvas_hw, offset) -> Optional[list]:
    """Each mask's foreground column intervals on the canvas, from the run kernels' stock mode.

    One launch sequence over fixed buffers (bounds, run count, prefix sum,
    runs) and one copy of the runs back: no dense mask crosses to the host.
    None when the runs overflow the buffer (the caller takes the dense-crop
    kernel for the frame, said once).
    """
    global _run_postprocessor
    from inference_accel.postprocess.mask_geometry import MaskPlacement
    from inference_accel.postprocess.triton_launch import RunsOverflow, TritonPostprocessor

    with _cuda_lock:
        if _run_postprocessor is None:
            _run_postprocessor = TritonPostprocessor()
        post = _run_postprocessor
    n, h, w = (int(v) for v in logits.shape)
    placement = MaskPlacement((0, h), (0, w), (int(target[0]), int(target[1])), (int(offset[0]), int(offset[1])))
    queries = torch.arange(n, dtype=torch.int32, device=logits.device)[None]
    counts = torch.full((1,), n, dtype=torch.int32, device=logits.device)
    with post.lock:
        pending = post.launch_masks_batch(logits[None], queries, counts, placement, tuple(canvas_hw))
        try:
            (intervals,) = post.finish_mask_intervals(pending)
        except RunsOverflow as exc:
            dispatch.warn_once(
                "inference_models:masks:overflow",
                f"inference_models integration: {exc}; such frames take the dense-crop stock-mask kernel",
            )
            return None
    return intervals


def _cuda_dense_masks(logits: torch.Tensor, target, canvas_hw, offset) -> torch.Tensor:
    """(N, CH, CW) bool on the logits' device, as the stock code returns it: the runs decoded by supervision."""
    from inference_accel.postprocess import stock_triton
    from inference_accel.postprocess.crop_rle import build_compact_mask, intervals_to_crop_runs

    intervals = _cuda_mask_intervals(logits, target, canvas_hw, offset)
    if intervals is None:  # overflow: the dense-crop kernel, the same arithmetic
        crops = stock_triton.threshold_upsampled_triton(logits, target)
        return torch.from_numpy(stock_masks.paste_dense(crops, target, offset, canvas_hw)).to(logits.device)
    crops = [intervals_to_crop_runs(r[:, 0], r[:, 1], r[:, 2]) for r in intervals]
    return torch.from_numpy(build_compact_mask(crops, canvas_hw).to_dense()).to(logits.device)


def _cuda_rle_counts(logits: torch.Tensor, target, canvas_hw, offset) -> list:
    """Each mask's COCO compressed counts over the canvas, straight from the runs."""
    from pycocotools import mask as mask_utils

    from inference_accel.postprocess import stock_triton
    from inference_accel.postprocess.crop_rle import intervals_to_coco_counts

    height, width = int(canvas_hw[0]), int(canvas_hw[1])
    intervals = _cuda_mask_intervals(logits, target, canvas_hw, offset)
    if intervals is None:  # overflow: the dense-crop kernel, the same arithmetic
        crops = stock_triton.threshold_upsampled_triton(logits, target)
        counts = [stock_masks.coco_counts(c, canvas_hw, offset) for c in crops]
    else:
        counts = [intervals_to_coco_counts(r[:, 0], r[:, 1], r[:, 2], canvas_hw).tolist() for r in intervals]
    objects = [{"size": [height, width], "counts": c} for c in counts]
    return [rle["counts"] for rle in mask_utils.frPyObjects(objects, height, width)]


def _stock_align(boxes_xyxy, selected_masks, geometry, mask_format, confidence, classes, image_size, frame_size):
    st = _stock()
    if mask_format == "dense":
        boxes, masks = st.align_instance_segmentation_results(image_bboxes=boxes_xyxy, masks=selected_masks, **geometry)
        mask_size = tuple(masks.shape[1:])
        mask = masks
    else:
        boxes_list, rles = [], []
        for box, rle in st.align_instance_segmentation_results_to_rle_masks(
            image_bboxes=boxes_xyxy, masks=selected_masks, **geometry
        ):
            boxes_list.append(box)
            rles.append(rle)
        if rles:
            mask_size = tuple(rles[0]["size"])
        else:
            g = geometry
            mask_size = st.resolve_mask_output_size(
                selected_masks.shape[1],
                selected_masks.shape[2],
                padding=g["padding"],
                inference_size=g["inference_size"],
                original_size=g["original_size"],
                size_after_pre_processing=g["size_after_pre_processing"],
                static_crop_offset=g["static_crop_offset"],
                masks_resolution_factor=g["masks_resolution_factor"],
            )
        mask = st.InstancesRLEMasks.from_coco_rle_masks(image_size=image_size, masks=rles, mask_size=mask_size)
        mask_size = mask.mask_size
        boxes = (
            torch.stack(boxes_list, dim=0)
            if boxes_list
            else torch.empty((0, 4), dtype=torch.int32, device=boxes_xyxy.device)
        )
    return st.AcceleratedInstanceDetections(
        xyxy=st.finalize_instance_segmentation_boxes(boxes, mask_size=mask_size, image_size=geometry["original_size"]),
        confidence=confidence,
        class_id=classes.int(),
        mask=mask,
        image_size=image_size,
        mask_frame_size=frame_size,
    )


_class_lock = threading.Lock()
_accelerated: dict = {}


def is_accelerated(obj) -> bool:
    """Whether a model (or class) is one of the accelerated classes."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__dict__.get("_accel_stock_class") is not None


def accelerated_class(stock_class: type) -> type:
    """The accelerated subclass of a stock RF-DETR instance-segmentation class (made once)."""
    if is_accelerated(stock_class):
        return stock_class
    _stock()  # the version check
    if not _is_supported_stock(stock_class):
        raise TypeError(
            f"{stock_class.__module__}.{stock_class.__name__} is not an RF-DETR instance-segmentation "
            "ONNX or TRT model of inference-models; supported: "
            + ", ".join(f"{m}.{c}" for m, c in STOCK_CLASSES.values())
        )
    with _class_lock:
        cls = _accelerated.get(stock_class)
        if cls is None:
            name = f"Accelerated{stock_class.__name__}"
            namespace = {
                key: value
                for key, value in AcceleratedRFDetrSegMixin.__dict__.items()
                if not (key.startswith("__") and key.endswith("__"))
            }
            namespace.update(
                __module__=__name__,
                __qualname__=name,
                __doc__=f"{stock_class.__name__} with inference_accel's exact pre/postprocessing "
                f"(see {__name__}).",
                _accel_stock_class=stock_class,
            )
            cls = type(name, (stock_class,), namespace)
            _accelerated[stock_class] = cls
        return cls


def _is_supported_stock(cls: type) -> bool:
    for module_name, class_name in STOCK_CLASSES.values():
        for base in cls.__mro__:
            if base.__module__ == module_name and base.__name__ == class_name:
                return True
    return False


def _stock_class(backend: str) -> type:
    _stock()
    module_name, class_name = STOCK_CLASSES[backend]
    return getattr(importlib.import_module(module_name), class_name)


def __getattr__(name: str):
    # The accelerated classes and the result class are built on first use: they subclass
    # inference-models classes, and the stock model modules need their runtimes
    # (onnxruntime; tensorrt + pycuda).
    if name == "AcceleratedInstanceDetections":
        return _stock().AcceleratedInstanceDetections
    if name == "INFERENCE_MODELS_VERSION":
        return _stock().version
    for backend, accelerated_name in ACCELERATED_NAMES.items():
        if name == accelerated_name:
            return accelerated_class(_stock_class(backend))  # made once, looked up each time
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def accelerate(model):
    """Accelerate one loaded stock RF-DETR instance-segmentation model in place; returns it.

    The model keeps its state (session or engine, config, classes); only its
    class changes to the accelerated subclass. Raises TypeError for any other model.
    """
    model.__class__ = accelerated_class(type(model))
    return model


def restore(model):
    """Undo :func:`accelerate`: the model gets its stock class back; returns it."""
    if is_accelerated(model):
        model.__class__ = type(model)._accel_stock_class
        model.__dict__.pop("_accel_last", None)
    return model


# -- the registry ---------------------------------------------------------------------------
_registry_lock = threading.Lock()
_originals: dict = {}


class UnsupportedRegistryError(RuntimeError):
    """The installed inference-models' registry lacks an entry we replace."""


def _check_version_only() -> None:
    """The version gate without importing ``inference_models`` (register() may run while the
    package is still initialising: the start-up hook fires when its registry module loads)."""
    version = installed_version()
    problem = version_problem(version)
    if problem is not None:
        raise (InferenceModelsMissingError if version is None else UnsupportedInferenceModelsVersionError)(problem)


def _registry_key(backend: str):
    _check_version_only()
    from inference_models.models.auto_loaders.entities import BackendType

    return (ARCHITECTURE, TASK, BackendType.ONNX if backend == "onnx" else BackendType.TRT)


def register(backends: Sequence[str] = ("onnx", "trt")) -> list:
    """Make ``AutoModel`` build the accelerated classes for RF-DETR instance segmentation.

    Replaces the ``REGISTERED_MODELS`` entries of ``backends`` (``"onnx"``,
    ``"trt"``) with lazy references to the accelerated classes, keeping the
    entries' model-feature declarations. Idempotent; returns the keys replaced.
    """
    _check_version_only()
    from inference_models.models.auto_loaders import models_registry
    from inference_models.utils.imports import LazyClass

    replaced = []
    with _registry_lock:
        for backend in backends:
            if backend not in STOCK_CLASSES:
                raise ValueError(f"unknown backend {backend!r}; choose from {sorted(STOCK_CLASSES)}")
            key = _registry_key(backend)
            entry = models_registry.REGISTERED_MODELS.get(key)
            if entry is None:
                raise UnsupportedRegistryError(f"inference-models has no registry entry {key}")
            if key in _originals:
                continue
            lazy = LazyClass(module_name=__name__, class_name=ACCELERATED_NAMES[backend])
            if isinstance(entry, models_registry.RegistryEntry):
                replacement = dataclasses.replace(entry, model_class=lazy)
            else:
                replacement = lazy
            _originals[key] = entry
            models_registry.REGISTERED_MODELS[key] = replacement
            replaced.append(key)
    if replaced:
        logger.info("inference_models integration: accelerated classes registered for %s", replaced)
    return replaced


def unregister() -> list:
    """Put the stock registry entries back; returns the keys restored."""
    with _registry_lock:
        if not _originals:
            return []
        from inference_models.models.auto_loaders import models_registry

        restored = list(_originals)
        for key, entry in _originals.items():
            models_registry.REGISTERED_MODELS[key] = entry
        _originals.clear()
    return restored


def registered() -> list:
    """The registry keys currently pointing at the accelerated classes."""
    with _registry_lock:
        return list(_originals)


__all__ = [
    "AcceleratedRFDetrSegMixin",
    "accelerate",
    "accelerated_class",
    "is_accelerated",
    "register",
    "registered",
    "restore",
    "unregister",
]
