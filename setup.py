"""Build step for the one compiled helper; everything else is in pyproject.toml.

``inference_accel.postprocess._sparse_native`` is the compiled twin of the
sparse CPU mask kernel. It must not contract multiply-adds on its own (the
pixels reproduce torch's exact float32 order), hence ``-ffp-contract=off``.
If it cannot be built or imported, the numpy executor runs instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "inference_accel.postprocess._sparse_native",
            sources=["inference_accel/postprocess/_sparse_native.c"],
            extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math"],
            libraries=["m"],
            optional=True,  # no compiler: the install still works, numpy runs instead
        )
    ]
)
