"""Build a TensorRT engine (``.plan``) from an RF-DETR-Seg ONNX export, on the GPU that will run it.

Engines are specific to a GPU and a TensorRT version, so they are built where
they run, never shipped. This needs the full ``tensorrt`` package (the gpu
extra): the lean runtime has no builder. FP32 by default, so the engine's
outputs stay close to onnxruntime's; ``fp16=True`` sets the builder's FP16
flag (TensorRT 10; TensorRT 11 builds strongly typed networks and has no such
flag, so there FP16 must come from the ONNX model's own types).

    inference-accel export --tensorrt            # cached seg-nano ONNX -> .plan beside it

``TRT_BUILD_API`` lists every TensorRT attribute used here. The tests cannot
check it against a real builder (``tensorrt`` does not install without a GPU
host); ``parity/gpu_selfcheck.py`` builds an engine with it on a GPU.

>>> default_plan_path("/cache/models/rfdetr-seg-nano.onnx").name
'rfdetr-seg-nano.plan'
"""

from __future__ import annotations

from pathlib import Path

from inference_accel.engine.io_spec import IOSpec, check_io
from inference_accel.errors import EngineBuildError, InvalidModelError, ModelNotFoundError

TRT_BUILD_API: dict[str, tuple[str, ...]] = {
    "module": ("Logger", "Builder", "OnnxParser", "MemoryPoolType", "BuilderFlag"),
    "Builder": ("create_network", "create_builder_config", "build_serialized_network"),
    "OnnxParser": ("parse_from_file", "num_errors", "get_error"),
    "INetworkDefinition": ("num_inputs", "num_outputs", "get_input", "get_output"),
    "IBuilderConfig": ("set_memory_pool_limit", "set_flag"),
}


def default_plan_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".plan")


def import_tensorrt_builder():
    """The full ``tensorrt`` package, or a clear error naming what is missing."""
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError:
        raise EngineBuildError(
            "building a TensorRT engine needs the full tensorrt package (the lean runtime has no "
            "builder); install the gpu extra: pip install 'inference-accel[gpu]'"
        ) from None
    if not hasattr(trt, "Builder"):
        raise EngineBuildError(f"{trt.__name__} {getattr(trt, '__version__', '?')} has no Builder")
    return trt


def network_io(network) -> IOSpec:
    """The parsed network's I/O, checked against RF-DETR-Seg's contract."""
    inputs = [(network.get_input(i).name, tuple(network.get_input(i).shape)) for i in range(network.num_inputs)]
    outputs = [(network.get_output(i).name, tuple(network.get_output(i).shape)) for i in range(network.num_outputs)]
    return check_io(inputs, outputs)


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path | None = None,
    *,
    fp16: bool = False,
    workspace_bytes: int = 4 << 30,
) -> Path:
    """Parse ``onnx_path``, check its I/O, build and write the serialized engine; returns its path."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelNotFoundError(f"ONNX model not found: {onnx_path}")
    plan_path = Path(plan_path) if plan_path is not None else default_plan_path(onnx_path)
    trt = import_tensorrt_builder()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InvalidModelError(f"TensorRT cannot parse {onnx_path}: {errors or 'no details'}")
    network_io(network)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise EngineBuildError(
                f"TensorRT {getattr(trt, '__version__', '?')} has no FP16 builder flag (strongly typed "
                "networks only): export an FP16 ONNX model instead"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    partial = plan_path.with_suffix(".partial")
    partial.write_bytes(memoryview(serialized))
    partial.replace(plan_path)
    return plan_path
