"""The compiled preprocessing path (``preprocess/native.py``, ``_resize_native.c``) against Pillow.

Expected values come from the installed Pillow (``Image.resize``) and the
reference chain (``preprocess_reference``), never from the code under test.
Every instruction set this machine runs is tested (``portable`` always);
the NEON kernels are built with an aarch64 cross compiler and run under
qemu when both are installed (skipped otherwise).
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_accel.errors import FlagValueError
from inference_accel.flags import Flags
from inference_accel.preprocess import api, native, pillow_resize
from inference_accel.preprocess.geometry import RESIZE_MODES, plan_geometry
from inference_accel.preprocess.reference import preprocess_reference
from tests.helpers_pillow import forced, pil

pytestmark = pytest.mark.skipif(native.native_reason() is not None, reason=f"helper unavailable: {native.native_reason()}")

ISAS = native.available_isas() or ("portable",)
SOURCE = Path(native.__file__).with_name("_resize_native.c")


# -- expected values ------------------------------------------------------------------
def reference(frame: np.ndarray, input_hw: tuple[int, int], mode: str = "stretch") -> torch.Tensor:
    return preprocess_reference(frame, input_hw, mode)[0][0]


def random_frame(hw: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, tuple(hw) + (3,), dtype=np.uint8)


def structured_frames(hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Frames that stress clamping and the tap edges: flat extremes, steps, stripes, ramps, a checkerboard."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    frames = {
        "black": np.zeros((h, w, 3), np.uint8),
        "white": np.full((h, w, 3), 255, np.uint8),
        "checker": np.where(((yy + xx) % 2)[..., None] == 0, 255, 0).astype(np.uint8).repeat(3, 2),
        "stripes": np.where((xx % 3 == 0)[..., None], 255, 0).astype(np.uint8).repeat(3, 2),
        "ramp": np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) % 256)], -1).astype(np.uint8),
        "step": np.where((xx < w // 2)[..., None], np.array([255, 0, 128]), np.array([0, 255, 1])).astype(np.uint8),
    }
    return {k: np.ascontiguousarray(v) for k, v in frames.items()}


@pytest.fixture(params=ISAS)
def isa(request) -> str:
    return request.param


def run_preprocess(frame, input_hw, mode, isa, dtype=torch.float32, threads=native.THREADS, index=0, batch=1):
    out = torch.full((batch, 3) + tuple(input_hw), 123.0, dtype=dtype)
    native.preprocess_native(frame, out, index, plan_geometry(frame.shape[:2], input_hw, mode), isa=isa, threads=threads)
    return out


# -- the resize alone, byte for byte -------------------------------------------------------
CASES = [
    ((1080, 1920), (312, 312)),  # landscape 1080p
    ((1920, 1080), (312, 312)),  # portrait: vertical first on Pillow 13
    ((480, 640), (432, 432)),
    ((37, 53), (11, 70)),  # down one axis, up the other
    ((240, 320), (768, 1024)),  # upscale
    ((5, 7), (300, 200)),  # large upscale
    ((1, 1), (7, 9)),  # 1-pixel source
    ((1, 500), (1, 37)),  # 1-pixel sides: one pass
    ((500, 1), (37, 1)),
    ((1, 500), (20, 3)),
    ((500, 1), (3, 20)),
    ((64, 64), (1, 1)),  # to a single pixel
    ((1000, 3), (312, 312)),  # extreme aspect ratios
    ((3, 1000), (312, 312)),
    ((1601, 4), (312, 312)),
    ((4, 1601), (312, 312)),
    ((1000, 5), (995, 1)),  # Pillow 12.3 vertical first, 13 horizontal first
    ((700, 6), (695, 2)),
    ((1600, 16), (31, 17)),
    ((30, 40), (30, 16)),  # one pass (horizontal)
    ((30, 40), (12, 40)),  # one pass (vertical)
    ((30, 40), (30, 40)),  # identity
    ((2160, 3840), (432, 432)),  # 4K
]


@pytest.mark.parametrize("in_hw,out_hw", CASES)
def test_resize_is_byte_exact_with_pillow(isa, in_hw, out_hw):
    frame = random_frame(in_hw, seed=sum(in_hw) + sum(out_hw))
    np.testing.assert_array_equal(native.resize_native(frame, out_hw, isa=isa), pil(frame, out_hw))


@pytest.mark.parametrize("in_hw,out_hw", [((97, 131), (40, 23)), ((40, 23), (97, 131)), ((300, 17), (31, 250))])
def test_structured_frames_are_byte_exact(isa, in_hw, out_hw):
    for name, frame in structured_frames(in_hw).items():
        np.testing.assert_array_equal(native.resize_native(frame, out_hw, isa=isa), pil(frame, out_hw), err_msg=name)


def test_one_8k_frame_is_byte_exact():
    frame = random_frame((4320, 7680), seed=8)
    frame[::97, ::89] = 255  # extremes so the clamp is exercised
    frame[5::101, 3::83] = 0
    for out_hw in [(312, 312), (768, 768)]:
        expected = pil(frame, out_hw)
        for isa in ISAS:
            np.testing.assert_array_equal(native.resize_native(frame, out_hw, isa=isa), expected, err_msg=f"{isa} {out_hw}")


def test_cases_cover_both_pass_orders_of_the_installed_pillow():
    orders = {"".join(pillow_resize.pass_sizes(i, o)) for i, o in CASES}
    assert {"hv", "h", "v", ""} <= orders
    if pillow_resize.pillow_version() >= (12, 2):
        assert "vh" in orders


@pytest.mark.parametrize("in_hw,out_hw", [((1920, 1080), (312, 312)), ((1080, 1920), (312, 312)), ((63, 20), (30, 4)), ((1000, 3), (312, 312))])
def test_both_pass_orders_on_any_pillow(monkeypatch, isa, in_hw, out_hw):
    """The kernel computes whichever order ``pillow_resize`` says: with the rule inverted it equals
    Pillow's two single-axis passes in the other order (so both orders are tested on every release)."""
    frame = random_frame(in_hw, seed=11)
    for vertical in (False, True):
        monkeypatch.setattr(pillow_resize, "vertical_first", lambda i, o, v=None, _vertical=vertical: _vertical)
        np.testing.assert_array_equal(native.resize_native(frame, out_hw, isa=isa), forced(frame, out_hw, vertical))


# -- the whole op: normalised float32 / float16 planes ------------------------------------------
@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("frame_hw,input_hw", [((1080, 1920), (312, 312)), ((1920, 1080), (312, 312)), ((100, 260), (48, 64)), ((260, 100), (64, 48)), ((3, 1000), (312, 312)), ((1, 1), (16, 16))])
def test_preprocess_equals_reference_in_every_mode(isa, mode, frame_hw, input_hw):
    frame = random_frame(frame_hw, seed=frame_hw[0])
    out = run_preprocess(frame, input_hw, mode, isa, batch=3, index=1)
    assert torch.equal(out[1], reference(frame, input_hw, mode))
    assert bool((out[[0, 2]] == 123.0).all()), "other batch slots were touched"


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_fp16_output_is_the_reference_rounded(isa, mode):
    frame = random_frame((360, 640), seed=3)
    out = run_preprocess(frame, (312, 312), mode, isa, dtype=torch.float16)
    assert torch.equal(out[0], reference(frame, (312, 312), mode).half())


def test_rgb_order_kept_when_not_bgr(isa):
    frame = random_frame((90, 120), seed=4)
    out = torch.empty(1, 3, 32, 32)
    native.preprocess_native(frame, out, 0, plan_geometry(frame.shape[:2], (32, 32)), bgr=False, isa=isa)
    assert torch.equal(out[0], reference(np.ascontiguousarray(frame[:, :, ::-1]), (32, 32)))


def test_threads_and_bands_do_not_change_a_bit(monkeypatch, isa):
    frame = random_frame((720, 1280), seed=5)
    expected = run_preprocess(frame, (312, 312), "stretch", isa, threads=1)
    monkeypatch.setattr(native, "PARALLEL_MIN_PIXELS", 1000)  # many thin bands
    for threads in (2, 3, 7):
        for mode in ("stretch", "center-crop"):
            got = run_preprocess(frame, (312, 312), mode, isa, threads=threads)
            assert torch.equal(got[0], reference(frame, (312, 312), mode)), (threads, mode)
    assert torch.equal(run_preprocess(frame, (312, 312), "stretch", isa, threads=2), expected)


def test_concurrent_callers_share_plans_safely(isa):
    """Several Python threads preprocessing at once (plans are cached and shared, read-only)."""
    from concurrent.futures import ThreadPoolExecutor

    frames = [random_frame((480 + 8 * k, 640), seed=20 + k % 3) for k in range(8)]

    def one(k: int) -> bool:
        frame = frames[k]
        out = run_preprocess(frame, (312, 312), RESIZE_MODES[k % 3], isa, threads=2)
        return torch.equal(out[0], reference(frame, (312, 312), RESIZE_MODES[k % 3]))

    with ThreadPoolExecutor(4) as executor:
        assert all(executor.map(one, list(range(8)) * 2))


def test_non_contiguous_frames(isa):
    base = random_frame((300, 400), seed=9)
    for frame in (base[:, ::-1], base[10:250, 30:390], base[::2, ::3], base.transpose(1, 0, 2), base[:, :, ::-1]):
        np.testing.assert_array_equal(native.resize_native(frame, (64, 48), isa=isa), pil(frame, (64, 48)))
        out = run_preprocess(frame, (64, 48), "letterbox", isa)
        assert torch.equal(out[0], reference(frame, (64, 48), "letterbox"))


def test_row_tails_never_read_past_the_frame(isa):
    """The last row of a frame that ends a page: an over-read would fault (vector loads near the end)."""
    import mmap

    h, w = 7, 101
    size = h * w * 3
    pages = -(-size // mmap.PAGESIZE) + 1
    buf = mmap.mmap(-1, pages * mmap.PAGESIZE)
    guard = np.frombuffer(buf, np.uint8)
    start = (pages - 1) * mmap.PAGESIZE - size  # frame ends exactly where the last (protected) page starts
    frame = guard[start : start + size].reshape(h, w, 3)
    frame[:] = random_frame((h, w), seed=2)
    import ctypes

    libc = ctypes.CDLL(None)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buf)) + (pages - 1) * mmap.PAGESIZE
    assert libc.mprotect(ctypes.c_void_p(address), mmap.PAGESIZE, 0) == 0  # PROT_NONE
    try:
        for out_hw in [(3, 40), (7, 40), (3, 101), (20, 150), (7, 101)]:
            np.testing.assert_array_equal(native.resize_native(frame, out_hw, isa=isa), pil(frame, out_hw))
            out = run_preprocess(frame, out_hw, "stretch", isa)
            assert torch.equal(out[0], reference(frame, out_hw))
    finally:
        libc.mprotect(ctypes.c_void_p(address), mmap.PAGESIZE, 3)  # PROT_READ | PROT_WRITE
        del frame, guard


# -- property test over sizes ---------------------------------------------------------------------
side = st.one_of(st.integers(1, 4), st.integers(1, 200), st.integers(200, 900))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(side, side, side, side, st.sampled_from(ISAS), st.sampled_from(RESIZE_MODES), st.booleans(), st.integers(0, 2**32 - 1))
def test_property_any_sizes(in_h, in_w, out_h, out_w, isa_name, mode, half, seed):
    frame = random_frame((in_h, in_w), seed)
    np.testing.assert_array_equal(native.resize_native(frame, (out_h, out_w), isa=isa_name), pil(frame, (out_h, out_w)))
    dtype = torch.float16 if half else torch.float32
    out = run_preprocess(frame, (out_h, out_w), mode, isa_name, dtype=dtype)
    assert torch.equal(out[0], reference(frame, (out_h, out_w), mode).to(dtype))


def test_shared_counter_chunks_cover_every_row_once(isa):
    """The threads of one frame claim chunks from one counter; a single caller then does them all."""
    rn = native._resize_native  # noqa: SLF001
    frame = random_frame((400, 600), seed=12)
    out_hw = (150, 90)
    order = "".join(pillow_resize.pass_sizes(frame.shape[:2], out_hw))
    plan = native._plan(frame.shape[:2], out_hw, (0, 90, 0, 150), isa, order)  # noqa: SLF001
    out = np.zeros(out_hw + (3,), np.uint8)
    counter = np.zeros(1, np.int64)
    assert rn.run(plan, frame, out, None, False, 0, 150, counter, 16) == 10  # ceil(150 / 16) chunks
    assert rn.run(plan, frame, out, None, False, 0, 150, counter, 16) == 0  # nothing left
    np.testing.assert_array_equal(out, pil(frame, out_hw))
    with pytest.raises(ValueError, match="outside the plan"):
        rn.run(plan, frame, out, None, False, 0, 151)
    with pytest.raises(ValueError, match="frame must be uint8"):
        rn.run(plan, frame[:, :300], out, None, False, 0, 150)


# -- the bounds of the exactness proof ------------------------------------------------------------------
def test_bounds_largest_accumulator_fits_int32():
    """Premises (P1), (P2) of the proof in _resize_native.c for the largest frame side the path takes.

    For every table from MAX_SIDE pixels to 1, 2, 3, 7, 312, ... pixels (the
    deepest reductions: the most taps per output) and upscales, each
    coefficient is in [0, 2**22] and the largest coefficient sum S keeps
    Pillow's accumulator 2**21 + 255 * S below 2**31, within the C bound.
    """
    rn = native._resize_native  # noqa: SLF001
    assert rn.COEF_SUM_MAX == (2**31 - 1 - 2**21) // 255
    assert rn.COEF_MAX == 2**rn.PRECISION_BITS == 2**22
    assert (rn.COEF_MAX >> rn.SPLIT_BITS) <= 2**15 - 1 and (2**rn.SPLIT_BITS - 1) <= 2**15 - 1  # int16 halves
    worst = 0
    for in_size, out_size in [(native.MAX_SIDE, n) for n in (1, 2, 3, 7, 312, 1000, native.MAX_SIDE // 2 - 1)] + [
        (7, native.MAX_SIDE), (1, 1000), (3, 7)
    ]:
        t = pillow_resize.coefficients(in_size, out_size)
        coef = t.coef.astype(np.int64)
        assert coef.min() >= 0 and coef.max() <= 2**22
        sums = coef.sum(axis=1)
        worst = max(worst, int(sums.max()))
        # the largest accumulator: every tap at 255
        assert 2**21 + 255 * int(sums.max()) <= 2**31 - 1, (in_size, out_size)
        assert int(sums.max()) <= 2**22 + t.max_taps // 2 + 1  # rounding adds at most 1/2 per tap
    assert worst <= rn.COEF_SUM_MAX
    # the split partial sums (proof (4), (5)): 2048 * sum(h) and sum(l) never exceed 255 * S
    t = pillow_resize.coefficients(native.MAX_SIDE, 1)
    c = t.coef.astype(np.int64)
    assert 255 * 2048 * (c >> 11).sum() <= 255 * c.sum() and 255 * (c & 2047).sum() <= 255 * c.sum()


def test_plan_refuses_tables_that_break_the_premises():
    rn = native._resize_native  # noqa: SLF001
    t = pillow_resize.coefficients(50, 10)
    good = (t.xmin, t.xsize, t.coef, t.ksize)
    rn.make_plan("portable", "h", 4, 50, 4, 10, 0, 10, 0, 4, good, None)  # accepted
    big = np.array(t.coef)
    big[0, 0] = 2**22 + 1
    with pytest.raises(ValueError, match="P1"):
        rn.make_plan("portable", "h", 4, 50, 4, 10, 0, 10, 0, 4, (t.xmin, t.xsize, big, t.ksize), None)
    many = np.full((1, 4000), 2**22 // 2, np.int32)  # a sum far above COEF_SUM_MAX
    with pytest.raises(ValueError, match="P2"):
        rn.make_plan("portable", "h", 1, 4000, 1, 1, 0, 1, 0, 1, (np.zeros(1, np.int32), np.full(1, 4000, np.int32), many, 4000), None)
    with pytest.raises(ValueError, match="tap range"):
        rn.make_plan("portable", "h", 4, 40, 4, 10, 0, 10, 0, 4, good, None)  # taps past a 40-pixel row
    with pytest.raises(ValueError, match="pass order"):
        rn.make_plan("portable", "v", 4, 50, 4, 10, 0, 10, 0, 4, None, None)  # widths differ: "h" must run


# -- the instruction-set knob ------------------------------------------------------------------------
def test_isa_flag_values(monkeypatch):
    monkeypatch.delenv(native.ISA_FLAG, raising=False)
    assert native.read_isa() == "auto"
    best = native.resolve_isa()[0]
    assert best == next(i for i in native.ISA_PREFERENCE if i in ISAS)
    monkeypatch.setenv(native.ISA_FLAG, "portable")
    assert native.resolve_isa() == ("portable", None)
    assert "portable" in native.isa_line()
    monkeypatch.setenv(native.ISA_FLAG, "sse9")
    with pytest.raises(FlagValueError, match=native.ISA_FLAG):
        native.read_isa()
    with pytest.raises(FlagValueError, match=native.ISA_FLAG):
        api.preprocess_into(random_frame((20, 30), 1), torch.empty(1, 3, 8, 8), flags=Flags())
    assert native.ISA_FLAG in native.isa_line()
    reasons = {v.implementation.name: v.reason for v in api.describe(Flags())}
    assert native.ISA_FLAG in reasons["native"]


def test_isa_flag_forces_portable_through_the_api(monkeypatch):
    frame = random_frame((200, 300), 6)
    monkeypatch.setenv(native.ISA_FLAG, "portable")
    out = torch.empty(1, 3, 64, 64)
    _, used = api.preprocess_into(frame, out, flags=Flags())
    assert used == api.NATIVE and native.resolve_isa()[0] == "portable"
    assert torch.equal(out[0], reference(frame, (64, 64)))


def test_unavailable_isa_falls_back_to_the_cpu_path(monkeypatch):
    missing = next((i for i in ("avx512", "avx2", "neon") if i not in ISAS), None)
    if missing is None:
        pytest.skip("this machine runs every instruction set")
    monkeypatch.setenv(native.ISA_FLAG, missing)
    reason = native.native_reason()
    assert reason is not None and native.ISA_FLAG in reason and missing in reason
    frame = random_frame((60, 80), 7)
    out = torch.empty(1, 3, 24, 24)
    _, used = api.preprocess_into(frame, out, flags=Flags())
    assert used == api.CPU and torch.equal(out[0], reference(frame, (24, 24)))


# -- the gate ---------------------------------------------------------------------------------------
def test_native_is_chosen_and_ranked_between_triton_and_cpu():
    names = [v.implementation.name for v in api.describe(Flags())]
    assert names == ["triton", "native", "cpu", "reference"]
    frame = random_frame((90, 160), 1)
    out = torch.empty(1, 3, 32, 32)
    _, used = api.preprocess_into(frame, out, flags=Flags())
    assert used == api.NATIVE and torch.equal(out[0], reference(frame, (32, 32)))


def test_helper_not_built_leaves_the_cpu_path(monkeypatch):
    monkeypatch.setattr(native, "_resize_native", None)
    monkeypatch.setattr(native, "_IMPORT_ERROR", "compiled helper not importable (test)")
    reasons = {v.implementation.name: v.reason for v in api.describe(Flags())}
    assert reasons["native"] == "compiled helper not importable (test)"
    assert native.isa_line().startswith("not built")
    frame = random_frame((60, 80), 2)
    out = torch.empty(1, 3, 24, 24)
    assert api.preprocess_into(frame, out, flags=Flags())[1] == api.CPU


def test_helper_failure_disables_native_once_and_falls_back(monkeypatch, caplog):
    calls = []

    def broken(*args):
        calls.append(1)
        raise MemoryError("scratch")

    monkeypatch.setitem(api.RUNNERS, api.NATIVE, broken)
    frame = random_frame((60, 80), 3)
    out = torch.empty(1, 3, 24, 24)
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        for _ in range(3):
            assert api.preprocess_into(frame, out, flags=Flags())[1] == api.CPU
    assert len(calls) == 1
    reason = {v.implementation.name: v.reason for v in api.describe(Flags())}[api.NATIVE]
    assert reason.startswith("disabled after a failure") and "scratch" in reason
    assert torch.equal(out[0], reference(frame, (24, 24)))


def test_wrong_pass_order_rule_sends_the_frame_to_the_reference(monkeypatch, caplog):
    """The pass-order self-check (``_pass_order_input``) guards the native path too."""
    frame = random_frame((200, 60), 4)
    real = pillow_resize.vertical_first
    monkeypatch.setattr(pillow_resize, "vertical_first", lambda i, o, v=None: not real(i, o, v))
    out = torch.empty(1, 3, 32, 32)
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        assert api.preprocess_into(frame, out, flags=Flags())[1] == api.REFERENCE
    assert any("native path cannot take this input" in r.getMessage() and "predicts" in r.getMessage() for r in caplog.records)
    assert torch.equal(out[0], reference(frame, (32, 32)))


def test_out_with_padded_rows_and_planes(isa):
    """A view into a larger buffer (row and plane strides of its own, unit stride along W)."""
    frame = random_frame((90, 130), 6)
    big = torch.full((2, 4, 40, 50), 7.0)
    out = big[:, 1:, 3:35, 5:45]  # (2, 3, 32, 40)
    native.preprocess_native(frame, out, 1, plan_geometry(frame.shape[:2], (32, 40), "letterbox"), isa=isa)
    assert torch.equal(out[1], reference(frame, (32, 40), "letterbox"))
    mask = torch.ones_like(big, dtype=torch.bool)
    mask[1, 1:, 3:35, 5:45] = False
    assert bool((big[mask] == 7.0).all()), "wrote outside the view"


def test_out_with_strided_rows_goes_to_the_cpu_path():
    frame = random_frame((40, 60), 5)
    out = torch.empty(1, 3, 16, 32)[..., ::2]
    assert api.preprocess_into(frame, out, flags=Flags())[1] == api.CPU
    assert torch.equal(out[0], reference(frame, (16, 16)))


def test_doctor_names_the_instruction_set():
    from inference_accel.doctor import doctor_report

    report = doctor_report(Flags())
    line = next(line for line in report.splitlines() if "native instruction set" in line)
    assert native.resolve_isa()[0] in line


# -- NEON: cross-compiled, run under qemu ---------------------------------------------------------------------
HARNESS = r"""
#define RESIZE_NATIVE_NO_PYTHON 1
#include "SOURCE"
#include <stdio.h>

/* cases.bin: int32 count, then per case int32 [in_h in_w out_h out_w order rx0 rx1 ry0 ry1 hk vk],
 * the frame bytes, the horizontal table (start, size, coef) if hk, the vertical one if vk.
 * Writes the NEON window of every case to out.bin; exits 1 if NEON and portable differ. */
static void *take(FILE *f, size_t n) { void *p = malloc(n ? n : 1); if (fread(p, 1, n, f) != n) exit(3); return p; }

int main(int argc, char **argv) {
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    int32_t count; if (fread(&count, 4, 1, in) != 1) return 3;
    for (int32_t c = 0; c < count; c++) {
        int32_t hd[11]; if (fread(hd, 4, 11, in) != 11) return 3;
        const ptrdiff_t in_h = hd[0], in_w = hd[1], out_h = hd[2], out_w = hd[3];
        uint8_t *frame = take(in, (size_t)(in_h * in_w * 3));
        Table ht = {0}, vt = {0};
        if (hd[9]) { ht.n_out = out_w; ht.ksize = hd[9]; ht.start = take(in, 4 * out_w); ht.size = take(in, 4 * out_w); ht.coef = take(in, 4 * out_w * hd[9]); }
        if (hd[10]) { vt.n_out = out_h; vt.ksize = hd[10]; vt.start = take(in, 4 * out_h); vt.size = take(in, 4 * out_h); vt.coef = take(in, 4 * out_h * hd[10]); }
        const ptrdiff_t rows = hd[8] - hd[7], cols = hd[6] - hd[5];
        uint8_t *res[2];
        for (int isa = 0; isa < 2; isa++) {
            Plan p;
            const char *err = plan_init(&p, isa ? ISA_NEON : ISA_PORTABLE, hd[4], in_h, in_w, out_h, out_w, hd[5], hd[6], hd[7], hd[8],
                                        hd[9] ? &ht : NULL, hd[10] ? &vt : NULL);
            if (err) { fprintf(stderr, "case %d: %s\n", c, err); return 2; }
            res[isa] = calloc((size_t)(rows * cols * 3), 1);
            Out o; memset(&o, 0, sizeof(o)); o.kind = OUT_U8; o.base = (char *)res[isa]; o.s_row = 3 * cols;
            ptrdiff_t mid = hd[7] + rows / 2; /* two bands, as two threads would run them */
            if (plan_run(&p, frame, 3 * in_w, &o, hd[7], mid) || plan_run(&p, frame, 3 * in_w, &o, mid, hd[8])) return 4;
            plan_free(&p);
        }
        if (memcmp(res[0], res[1], (size_t)(rows * cols * 3))) { fprintf(stderr, "case %d: neon != portable\n", c); return 1; }
        fwrite(res[1], 1, (size_t)(rows * cols * 3), out);
    }
    fclose(out);
    return 0;
}
"""

NEON_CASES = [
    ((1080, 1920), (312, 312), None),
    ((1920, 1080), (312, 312), None),
    ((37, 53), (11, 70), None),
    ((5, 7), (300, 200), None),
    ((1000, 3), (312, 312), None),
    ((3, 1000), (312, 312), None),
    ((1, 500), (20, 3), None),
    ((30, 40), (30, 16), None),
    ((30, 40), (12, 40), None),
    ((30, 40), (30, 40), None),
    ((400, 300), (100, 150), (20, 120, 10, 90)),  # a centre-crop window
]


def test_neon_kernels_under_qemu(tmp_path):
    if not SOURCE.exists():
        pytest.skip(f"{SOURCE.name} is not installed beside the module")
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not cc or not qemu:
        pytest.skip("needs aarch64-linux-gnu-gcc and qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user-static)")
    harness = tmp_path / "harness.c"
    harness.write_text(HARNESS.replace("SOURCE", str(SOURCE)))
    binary = tmp_path / "harness"
    subprocess.run([cc, "-O2", "-std=c11", "-static", "-Wall", "-Werror", "-Wno-unused-function", str(harness), "-o", str(binary)],
                   check=True, capture_output=True, text=True)
    order_code = {"": 0, "h": 1, "v": 2, "hv": 3, "vh": 4}
    blob = [struct.pack("<i", len(NEON_CASES))]
    expected = []
    for k, (in_hw, out_hw, window) in enumerate(NEON_CASES):
        frame = random_frame(in_hw, seed=k)
        rx0, rx1, ry0, ry1 = window or (0, out_hw[1], 0, out_hw[0])
        order = "".join(pillow_resize.pass_sizes(in_hw, out_hw))
        ht = pillow_resize.coefficients(in_hw[1], out_hw[1]) if "h" in order else None
        vt = pillow_resize.coefficients(in_hw[0], out_hw[0]) if "v" in order else None
        blob.append(struct.pack("<11i", *in_hw, *out_hw, order_code[order], rx0, rx1, ry0, ry1,
                                ht.ksize if ht else 0, vt.ksize if vt else 0))
        blob.append(frame.tobytes())
        for t in (ht, vt):
            if t is not None:
                blob += [t.xmin.tobytes(), t.xsize.tobytes(), t.coef.tobytes()]
        expected.append(pil(frame, out_hw)[ry0:ry1, rx0:rx1])
    (tmp_path / "cases.bin").write_bytes(b"".join(blob))
    done = subprocess.run([qemu, str(binary), str(tmp_path / "cases.bin"), str(tmp_path / "out.bin")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.uint8)
    at = 0
    for (in_hw, out_hw, _), want in zip(NEON_CASES, expected):
        np.testing.assert_array_equal(got[at : at + want.size].reshape(want.shape), want, err_msg=f"{in_hw} -> {out_hw}")
        at += want.size
    assert at == got.size


def test_x86_kernels_compile_without_the_python_glue(tmp_path):
    """The kernels build on their own (what the NEON harness relies on), warning-free, with gcc."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not SOURCE.exists() or os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("no C compiler")
    harness = tmp_path / "k.c"
    harness.write_text(f'#define RESIZE_NATIVE_NO_PYTHON 1\n#include "{SOURCE}"\nint main(void) {{ return isa_runs(0) ? 0 : 1; }}\n')
    subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", "-Wno-unused-parameter",
                    "-Wno-unused-const-variable", str(harness), "-o", str(tmp_path / "k")], check=True, capture_output=True, text=True)
