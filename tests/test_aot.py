"""AOT compilation of exactly what the launchers run, for GPUs we do not have.

Two halves:

- the launches the launchers make (recorded under the interpreter, with the
  GPU's tiles and arithmetic) are, per Triton's own JIT binder for a CUDA
  target, the very compiles ``inference_accel.aot`` performs: same kernel,
  signature, constexprs, no alignment specialisation, same options (the
  launch passes the contract's options object, the AOT compile the same one);
- every variant compiles for sm_87/89/90/86/120 without a spill
  (``python -m inference_accel.aot`` in a subprocess with
  ``TRITON_INTERPRET`` unset: ``triton.jit`` reads it at import time).

Compiling all 16 variants for the five targets takes about a minute on two
cores with a cold Triton cache (seconds with a warm one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from inference_accel import aot
from inference_accel.postprocess.mask_geometry import MaskPlacement
from inference_accel.postprocess.stock_triton import threshold_upsampled_triton
from inference_accel.postprocess.triton_launch import TritonPostprocessor
from inference_accel.preprocess.geometry import plan_geometry
from inference_accel.preprocess.triton_launch import TritonPreprocessor
from inference_accel.triton_common import interpreter_active
from tests.test_postprocess_sparse import confident_logits, polygon_logits, random_boxes

pytestmark = pytest.mark.skipif(not interpreter_active(), reason="needs TRITON_INTERPRET=1 (set by conftest)")

CONTRACTS = aot.collect_contracts()


class _Recording:
    """Stands in for a contract's jitted kernel: logs each launch's keywords, then runs it."""

    def __init__(self, contract, log):
        self.contract, self.kernel, self.log = contract, contract.fn, log

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(**kwargs):
            self.log.append((self.contract, kwargs))
            return launch(**kwargs)

        return run


@contextmanager
def recorded_launches():
    log = []
    saved = [(c, c.fn) for c in CONTRACTS]
    try:
        for contract in CONTRACTS:
            contract.fn = _Recording(contract, log)
        yield log
    finally:
        for contract, fn in saved:
            contract.fn = fn


def _launch_everything():
    """Both launchers, every GPU variant: output dtypes, pass orders, mask dtypes, geometries."""
    from inference_accel.kernels import postprocess as k

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (45, 17, 3), dtype=np.uint8)
    pre = TritonPreprocessor()
    for dtype, vertical_first, mode in (
        (torch.float32, False, "stretch"),
        (torch.float32, True, "center-crop"),
        (torch.float16, False, "stretch"),
        (torch.float16, True, "letterbox"),
    ):
        out = torch.empty(1, 3, 8, 12, dtype=dtype)
        pre(frame, out, 0, plan_geometry(frame.shape[:2], (8, 12), mode), vertical_first=vertical_first)
    post = TritonPostprocessor(capacity=1 << 12)
    post.interpreter_tiles = False  # the GPU's tiles
    q = 4
    logits, boxes = confident_logits(q, 3, rng), random_boxes(q, rng)
    masks = torch.from_numpy(polygon_logits(rng, q, (12, 12), (48, 48)))
    for dtype, geometry in (
        (torch.float32, None),
        (torch.float16, plan_geometry((40, 60), (48, 48), "letterbox")),
        (torch.bfloat16, None),
        (torch.float64, None),  # converted to float32 by the launcher
    ):
        frame_hw = geometry.frame_hw if geometry is not None else (40, 50)
        post(logits, boxes, masks.to(dtype), geometry, frame_hw, arith=k.ARITH_CUDA)
    # stock-mode masks (MODE_STOCK) of each mask dtype, on a window placed on a canvas
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        post.finish_masks(post.launch_masks_batch(
            masks.to(dtype)[None], torch.tensor([[2, 0]], dtype=torch.int32), torch.tensor([2], dtype=torch.int32),
            MaskPlacement((1, 11), (0, 12), (30, 40), (3, 5)), (40, 50), arith=k.ARITH_CUDA,
        ))
    # the stock-mask kernel's GPU variant (its tiles, tl.fma): binding only, not pixels
    threshold_upsampled_triton(torch.from_numpy(rng.standard_normal((2, 5, 4)).astype(np.float32)), (23, 17),
                               gpu_variant=True)


def test_launches_pass_the_contract_options_object_the_aot_compile_uses():
    with recorded_launches() as log:
        _launch_everything()
    assert {c.name for c, _ in log} == {c.name for c in CONTRACTS}
    for contract, kwargs in log:
        options = {n: kwargs[n] for n in kwargs if n not in contract.names}
        assert options == dict(contract.options) == {"num_warps": 4, "enable_fp_fusion": False}
        assert all(v.options is contract.options for v in contract.variants())


def test_every_launch_is_an_aot_variant_per_tritons_own_binder():
    """What the JIT would compile for each recorded launch == what ``aot.compile_for`` compiles."""
    with recorded_launches() as log:
        _launch_everything()
    hit = set()
    for contract, kwargs in log:
        args = {n: kwargs[n] for n in contract.names}
        variant = contract.variant_of(args)
        assert variant is not None, f"{contract.name}: launch matches no AOT variant"
        hit.add(variant.name)
        for arch in (87, 90):
            jit = aot.jit_request(contract, args, arch)
            ahead = aot.aot_request(variant, arch)
            assert jit.signature == ahead.signature
            assert jit.constexprs == ahead.constexprs
            assert jit.attrs == ahead.attrs == {}, "a launch specialised on alignment or value"
            assert jit.options == ahead.options
            assert jit.options.enable_fp_fusion is False
    all_variants = {v.name for c in CONTRACTS for v in c.variants()}
    # fp16/bf16 mask_bounds and both EMIT passes of each dtype were launched.
    assert all_variants - hit == set(), sorted(all_variants - hit)


def test_aot_compiles_every_variant_for_five_targets_without_spills(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    report = tmp_path / "aot.json"
    result = subprocess.run(
        [sys.executable, "-m", "inference_accel.aot", "--json", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(report.read_text())
    names = {v.name for c in CONTRACTS for v in c.variants()}
    assert len(names) == 22
    assert sorted((r["kernel"], r["arch"]) for r in rows) == sorted(
        (n, a) for n in names for a in (87, 89, 90, 86, 120)
    )
    for row in rows:
        where = f"{row['kernel']} on sm_{row['arch']}"
        assert row["local_bytes"] == 0 and row["stack_bytes"] == 0, f"{where} spills"
        assert row["fp_fusion"] is False, f"{where} compiled with FP fusion"
        assert row["registers"] > 0 and row["ptx_bytes"] > 0 and row["num_warps"] == 4
        assert 0 < row["occupancy"] <= 1 and row["blocks_per_sm"] > 0, where
