"""Build a TensorRT engine (``.plan``) from an RF-DETR-Seg ONNX export, on the GPU that will run it.

Engines are specific to a GPU and a TensorRT version, so they are built where
they run, never shipped. This needs the full ``tensorrt`` package (the gpu
extra; JetPack's on a Jetson): the lean runtime has no builder. FP32 by
default, so the engine's outputs stay close to onnxruntime's.

TensorRT 10 and 11 differ here in one place, branched on the installed major
version (``tensorrt_major``): ``fp16=True`` sets TensorRT 10's FP16 builder
flag (weak typing); TensorRT 11 removed weak typing (no ``BuilderFlag.FP16``,
every network strongly typed), so there an FP16 engine must come from an ONNX
model whose own types are FP16, and ``fp16=True`` is refused before parsing.

    inference-accel export --tensorrt            # cached seg-nano ONNX -> .plan beside it

**Batch.** An ONNX model with a fixed batch builds as it is. One with a
dynamic batch needs ``max_batch``: the engine gets one optimisation profile
for batch 1 to ``max_batch`` (tuned for ``opt_batch``, default
``max_batch``), which :class:`~inference_accel.engine.tensorrt_engine.TensorRTEngine`
reads back as its batch range. ``max_batch`` on a fixed-batch model, or a
dynamic batch without it, is an :class:`~inference_accel.errors.EngineBuildError`
naming both.

``TRT_OBJECTS`` names the TensorRT class behind each expression here that
holds a TensorRT object; ``tests/test_tensorrt_build.py`` resolves every
TensorRT attribute this module uses against TensorRT 10's API (its type
stubs) and TensorRT 11's (the lean runtime's classes, and NVIDIA's list of
builder APIs removed in 11), each version branch against its own major only.
``parity/gpu_selfcheck.py`` builds a real engine with it on a GPU.

>>> default_plan_path("/cache/models/rfdetr-seg-nano.onnx").name
'rfdetr-seg-nano.plan'
"""

from __future__ import annotations

from pathlib import Path

from inference_accel.arguments import check_optional_positive_int
from inference_accel.engine.io_spec import IOSpec, check_io
from inference_accel.engine.tensorrt_engine import SUPPORTED_MAJORS, is_stub_package, tensorrt_major
from inference_accel.errors import EngineBuildError, InvalidModelError, ModelNotFoundError

# The TensorRT class behind each expression that holds a TensorRT object (the
# module itself is ``trt``).
TRT_OBJECTS: dict[str, str] = {
    "logger": "Logger",
    "builder": "Builder",
    "network": "INetworkDefinition",
    "parser": "OnnxParser",
    "config": "IBuilderConfig",
    "profile": "IOptimizationProfile",
    "serialized": "IHostMemory",
    "network.get_input(i)": "ITensor",
    "network.get_output(i)": "ITensor",
}


def default_plan_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".plan")


def import_tensorrt_builder():
    """The full ``tensorrt`` package (10.x or 11.x), or a clear error naming what is missing."""
    hint = "install the gpu extra: pip install 'inference-accel[gpu]'"
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError:
        raise EngineBuildError(
            "building a TensorRT engine needs the full tensorrt package (the lean runtime has no "
            f"builder); {hint}"
        ) from None
    if is_stub_package(trt):
        raise EngineBuildError(
            "building a TensorRT engine needs the full tensorrt package; the installed 'tensorrt' is "
            f"only type stubs (tensorrt-stubs); {hint}"
        )
    version = getattr(trt, "__version__", "?")
    if tensorrt_major(trt) not in SUPPORTED_MAJORS:
        raise EngineBuildError(f"tensorrt {version} is not supported: TensorRT 10 or 11 is needed")
    if not hasattr(trt, "Builder"):
        raise EngineBuildError(f"{trt.__name__} {version} has no Builder")
    return trt


def network_io(network) -> IOSpec:
    """The parsed network's I/O, checked against RF-DETR-Seg's contract."""
    inputs = [(network.get_input(i).name, tuple(network.get_input(i).shape)) for i in range(network.num_inputs)]
    outputs = [(network.get_output(i).name, tuple(network.get_output(i).shape)) for i in range(network.num_outputs)]
    return check_io(inputs, outputs)


def batch_profile(
    spec: IOSpec, max_batch: int | None, opt_batch: int | None, onnx_path: Path | str = "the model"
) -> tuple[int, int, int] | None:
    """(min, opt, max) batch of the optimisation profile to build; None for a fixed-batch model.

    >>> from inference_accel.engine.io_spec import BatchRange
    >>> spec = IOSpec("input", (32, 32), 5, 4, (8, 8), batch=BatchRange(1, None))
    >>> batch_profile(spec, 8, 2)
    (1, 2, 8)
    """
    max_batch = check_optional_positive_int("max_batch", max_batch)
    opt_batch = check_optional_positive_int("opt_batch", opt_batch)
    if spec.batch.fixed:
        if max_batch is not None or opt_batch is not None:
            raise EngineBuildError(
                f"{onnx_path} has a {spec.batch.describe()}: max_batch/opt_batch apply only to a dynamic "
                "batch (export the ONNX model with dynamic_batch=True)"
            )
        return None
    if max_batch is None:
        raise EngineBuildError(
            f"{onnx_path} has a dynamic batch: pass max_batch (the largest batch the engine will take)"
        )
    best = max_batch if opt_batch is None else opt_batch
    if best > max_batch:
        raise EngineBuildError(f"opt_batch {best} exceeds max_batch {max_batch}")
    return (1, best, max_batch)


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path | None = None,
    *,
    fp16: bool = False,
    workspace_bytes: int = 4 << 30,
    max_batch: int | None = None,
    opt_batch: int | None = None,
) -> Path:
    """Parse ``onnx_path``, check its I/O, build and write the serialized engine; returns its path.

    ``max_batch`` / ``opt_batch``: the batch profile of a dynamic-batch model (see the module docstring).
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelNotFoundError(f"ONNX model not found: {onnx_path}")
    plan_path = Path(plan_path) if plan_path is not None else default_plan_path(onnx_path)
    trt = import_tensorrt_builder()
    if fp16 and tensorrt_major(trt) >= 11:
        raise EngineBuildError(
            f"TensorRT {trt.__version__} has no FP16 builder flag (weak typing was removed in 11: every "
            "network is strongly typed): export an FP16 ONNX model instead, or build without --fp16"
        )
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Explicit batch is the only mode since TensorRT 10; in 11 the network is
    # also strongly typed (its types are the ONNX model's).
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InvalidModelError(f"TensorRT cannot parse {onnx_path}: {errors or 'no details'}")
    spec = network_io(network)
    batches = batch_profile(spec, max_batch, opt_batch, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if batches is not None:
        h, w = spec.input_hw
        low, best, high = ((n, 3, h, w) for n in batches)
        profile = builder.create_optimization_profile()
        profile.set_shape(spec.input_name, low, best, high)
        config.add_optimization_profile(profile)
    if fp16 and tensorrt_major(trt) < 11:
        config.set_flag(trt.BuilderFlag.FP16)  # TensorRT 10's weak typing: FP16 kernels allowed
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    partial = plan_path.with_suffix(".partial")
    partial.write_bytes(memoryview(serialized))
    partial.replace(plan_path)
    return plan_path
