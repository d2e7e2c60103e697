"""Each kernel's launch contract (``KernelContract``) against the kernel it describes.

A contract lists a kernel's parameters once; the launchers bind by its names
and the AOT variants come from it. These tests fail when the ``@triton.jit``
function and its contract disagree in names or order, when a launch passes
something the contract does not declare, and they launch through contracts
under the interpreter (``conftest.py`` sets ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

from inference_accel import aot
from inference_accel.triton_common import KernelContract, constexpr, interpreter_active, pointer, scalars

pytestmark = pytest.mark.skipif(not interpreter_active(), reason="needs TRITON_INTERPRET=1 (set by conftest)")

CONTRACTS = aot.collect_contracts()


def test_every_kernel_module_has_contracts():
    assert {c.name for c in CONTRACTS} == {
        "pil_resize_normalize", "select_rank", "select_emit", "mask_bounds", "mask_runs", "stock_threshold",
    }


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_kernel_signature_equals_its_contract(contract):
    """The jitted function's parameter names, in order, are the contract's."""
    params = tuple(inspect.signature(contract.fn.fn).parameters)
    assert params == contract.names
    assert contract.mismatch(contract.fn) is None
    # The specialisation rules come from the contract: no scalar specialised,
    # no pointer specialised on alignment (so AOT variants are the whole set).
    assert set(contract.fn.kwargs["do_not_specialize"]) == {
        p.name for p in contract.params if not p.is_pointer and not p.is_constexpr
    }
    assert set(contract.fn.kwargs["do_not_specialize_on_alignment"]) == {
        p.name for p in contract.params if p.is_pointer
    }


def _diff_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    ok = offs < n
    a = tl.load(a_ptr + offs, mask=ok)
    b = tl.load(b_ptr + offs, mask=ok)
    tl.store(out_ptr + offs, a - b, mask=ok)


def _diff_contract(*names: str) -> KernelContract:
    params = {
        "a_ptr": pointer("a_ptr", "fp32"),
        "b_ptr": pointer("b_ptr", "fp32"),
        "out_ptr": pointer("out_ptr", "fp32"),
        "n": scalars("i32", "n")[0],
        "BLOCK": constexpr("BLOCK", 16, interpreter=(32,)),
    }
    return KernelContract("diff", [params[n] for n in names], num_warps=1)


def test_a_reordered_or_renamed_contract_is_refused():
    with pytest.raises(TypeError, match="differ from the contract"):
        _diff_contract("b_ptr", "a_ptr", "out_ptr", "n", "BLOCK").jit(_diff_kernel)
    with pytest.raises(TypeError, match="differ from the contract"):
        _diff_contract("a_ptr", "b_ptr", "out_ptr", "BLOCK").jit(_diff_kernel)
    contract = _diff_contract("a_ptr", "b_ptr", "out_ptr", "n", "BLOCK")
    contract.jit(_diff_kernel)
    assert contract.mismatch(contract.fn) is None


def test_launch_by_keyword_under_the_interpreter(monkeypatch):
    """Keywords in any order bind by name; a swapped positional tuple could not."""
    contract = _diff_contract("a_ptr", "b_ptr", "out_ptr", "n", "BLOCK")
    contract.jit(_diff_kernel)
    a = torch.arange(10, dtype=torch.float32)
    b = torch.full((10,), 3.0)
    out = torch.zeros(16)
    contract.launch((1,), BLOCK=16, n=10, out_ptr=out, b_ptr=b, a_ptr=a)
    assert torch.equal(out[:10], a - b) and bool((out[10:] == 0).all())
    contract.launch((1,), BLOCK=32, n=10, out_ptr=out, b_ptr=a, a_ptr=b)  # interpreter-only value
    assert torch.equal(out[:10], b - a)
    with pytest.raises(TypeError, match="missing arguments \\['n'\\]"):
        contract.launch((1,), BLOCK=16, out_ptr=out, b_ptr=b, a_ptr=a)
    with pytest.raises(TypeError, match="unexpected \\['m'\\]"):
        contract.launch((1,), BLOCK=16, n=10, m=1, out_ptr=out, b_ptr=b, a_ptr=a)
    with pytest.raises(TypeError, match="a_ptr is \\*i32"):
        contract.launch((1,), BLOCK=16, n=10, out_ptr=out, b_ptr=b, a_ptr=a.int())
    with pytest.raises(TypeError, match="n is int64"):  # Triton cannot pass numpy scalars
        contract.launch((1,), BLOCK=16, n=np.int64(10), out_ptr=out, b_ptr=b, a_ptr=a)
    with pytest.raises(ValueError, match="BLOCK=8"):
        contract.launch((1,), BLOCK=8, n=10, out_ptr=out, b_ptr=b, a_ptr=a)
    # On a GPU (no interpreter) the interpreter-only value is refused before launching.
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="BLOCK=32"):
        contract.bind(dict(BLOCK=32, n=10, out_ptr=out, b_ptr=b, a_ptr=a))


def test_a_real_kernel_launched_through_its_contract():
    """select_rank through SELECT_RANK.launch: ranks equal a stable descending argsort."""
    from inference_accel.kernels import postprocess as k

    rng = np.random.default_rng(0)
    q, c = 7, 5
    prob = torch.from_numpy(rng.random(q * c).astype(np.float32))
    prob[3] = prob[4]  # a tie: ascending flat index first
    cmap = torch.arange(c, dtype=torch.int32)
    rank = torch.empty(q * c, dtype=torch.int32)
    k.SELECT_RANK.launch(
        (triton.cdiv(q * c, k.SEL_BLOCK),),
        threshold=0.5, map_len=c, qc=q * c, num_classes=c, num_queries=q,
        rank_ptr=rank, map_ptr=cmap, prob_ptr=prob, BLOCK=k.SEL_BLOCK,
    )
    order = np.argsort(-prob.numpy(), kind="stable")
    position = np.empty(q * c, np.int64)
    position[order] = np.arange(q * c)
    expected = np.where((prob.numpy() > 0.5) & (position < q), position, -1)
    assert np.array_equal(rank.numpy(), expected)


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_variants_cover_every_declared_choice(contract):
    variants = contract.variants()
    expected = 1
    for p in contract.params:
        expected *= len(p.choices())
    assert len(variants) == expected == len({v.name for v in variants})
    for v in variants:
        assert tuple(v.signature) == contract.names
        assert v.options is contract.options
        assert v.fn is contract.fn
        assert {n for n, t in v.signature.items() if t == "constexpr"} == set(v.constexprs)
