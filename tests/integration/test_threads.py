"""The accelerated model under a server's worker threads: one model, many threads.

The ``inference`` server calls one loaded model from several worker threads.
The accelerated classes keep no per-call buffers on the model (each call
allocates its own input batch and output crops), so concurrent calls must
give exactly the sequential answers.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tests.integration.conftest import assert_same_detections, load, random_frame

SIZES = [(1080, 1920), (1920, 1080), (312, 556), (480, 640), (33, 47)]


def test_one_accelerated_model_shared_by_four_threads_equals_sequential(tiny_package_factory):
    from inference_accel.integrations.inference_models import accelerate

    stock = load(tiny_package_factory("threads"))
    accelerated = accelerate(copy.copy(stock))
    rng = np.random.default_rng(11)
    frames = [random_frame(rng, SIZES[i % len(SIZES)]) for i in range(20)]
    for mask_format in ("rle", "dense"):
        kwargs = dict(mask_format=mask_format, confidence=0.05)
        sequential = [accelerated(frame, **kwargs) for frame in frames]
        with ThreadPoolExecutor(max_workers=4) as pool:
            concurrent = list(pool.map(lambda frame: accelerated(frame, **kwargs), frames))
        for one, other, frame in zip(sequential, concurrent, frames):
            assert_same_detections(one, other)
            assert_same_detections(stock(frame, **kwargs), other)  # and still the stock answer
