"""Package discovery and the compiled helpers; everything else is in pyproject.toml.

Packages: every package under ``inference_accel/`` (found, so a new
subpackage cannot be left out of the wheel), plus ``kernels/`` installed as
``inference_accel.kernels`` (never as a top-level ``kernels``: Hugging Face
owns that name). ``tests/test_packaging.py`` checks the built wheel holds
every module of the source tree.

``inference_accel.postprocess._sparse_native`` is the compiled twin of the
sparse CPU mask kernel. It must not contract multiply-adds on its own (the
pixels reproduce torch's exact float32 order), hence ``-ffp-contract=off``.
If it cannot be built or imported, the numpy executor runs instead.

``inference_accel.integrations._stock_masks_native`` is inference-models'
antialiased mask resize + threshold, exactly (``integrations/stock_masks.py``);
like the sparse helper it reproduces torch's float32 order, hence
``-ffp-contract=off`` (its fused multiply-adds are explicit ``fmaf`` calls,
an ``avx2,fma`` build chosen at run time). Without it the numpy path runs.

``inference_accel.preprocess._resize_native`` is Pillow's BILINEAR resize,
exactly, fused with the normalisation (``preprocess/native.py``). It is built
for the baseline of the platform; its AVX2 and AVX-512 kernels carry their
own ``target`` attributes and run only where the CPU reports them at run time
(NEON is baseline on aarch64). Integer arithmetic only; ``-fno-fast-math``
keeps the build honest anyway. If it cannot be built, the Pillow-band CPU
path runs instead.

``inference_accel.masks._polygons_native`` paints mask runs into the canvas
findContours traces and writes the response's points (JSON text or dicts),
exactly as the numpy/Python references do (``masks/polygons_native.py``).
Integer work only. Without it the references run.
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=find_packages(include=["inference_accel", "inference_accel.*"]) + ["inference_accel.kernels"],
    package_dir={"inference_accel.kernels": "kernels"},
    ext_modules=[
        Extension(
            "inference_accel.postprocess._sparse_native",
            sources=["inference_accel/postprocess/_sparse_native.c"],
            extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math"],
            libraries=["m"],
            optional=True,  # no compiler: the install still works, numpy runs instead
        ),
        Extension(
            "inference_accel.integrations._stock_masks_native",
            sources=["inference_accel/integrations/_stock_masks_native.c"],
            extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math"],
            libraries=["m"],
            optional=True,  # no compiler: the install still works, the numpy path of stock_masks runs
        ),
        Extension(
            "inference_accel.preprocess._resize_native",
            sources=["inference_accel/preprocess/_resize_native.c"],
            extra_compile_args=["-O3", "-std=c11", "-fno-fast-math"],
            optional=True,  # no compiler: the install still works, the Pillow-band path runs instead
        ),
        Extension(
            "inference_accel.masks._polygons_native",
            sources=["inference_accel/masks/_polygons_native.c"],
            extra_compile_args=["-O3", "-std=c11", "-fno-fast-math"],
            optional=True,  # no compiler: the install still works, the numpy/Python references run
        ),
    ],
)
