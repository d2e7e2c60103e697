"""Pillow's resize pass order: the per-release table against the installed Pillow.

``pillow_resize.PASS_ORDER_RULES`` was read from each release's source; here
every expectation about the *installed* Pillow comes from its own bytes
(which of the two forced orders its resize equals), never from a version
number, so this module passes, and can fail, under each Pillow CI runs
(12.3 and 13): ``python -m pytest tests/test_pillow_pass_order.py`` in a
venv with the other Pillow.

Orders are forced with two single-axis Pillow resizes: a resize that keeps
one axis runs a single pass on every release.
"""

from __future__ import annotations

import inspect
import logging
import re
import time

import numpy as np
import PIL
import pytest
import torch
from PIL import Image

from inference_accel.flags import Flags
from inference_accel.preprocess import api, native, pillow_resize
from inference_accel.preprocess.cpu import resize_frame
from inference_accel.preprocess.reference import preprocess_reference
from tests.helpers_pillow import forced, pil

# Output sides of the sweep: 1 and 2 (extreme reduction), 7, 16/17 (around the
# source's narrow side: down- and upscaling of it), 31, 312 (model input).
OUT_SIDES = (1, 2, 7, 16, 17, 31, 312)
# Long sides of the sweep: around 100x the narrow side (Pillow 12.2/12.3 split
# "tall" images at in_h > 100 * in_w: 1601 and 1700 cross it between w = 16 and 17).
LONG_SIDES = (1000, 1601, 1700, 2048, 3000)


@pytest.fixture(autouse=True)
def _fresh_probe_cache():
    """Each test probes afresh: a test that fakes Pillow must not leave its verdicts behind."""
    pillow_resize._probe_pass_order.cache_clear()  # noqa: SLF001
    yield
    pillow_resize._probe_pass_order.cache_clear()  # noqa: SLF001


# -- helpers: the installed Pillow -----------------------------------------------
def observed_order(image: np.ndarray, out_hw: tuple[int, int]) -> bool | None:
    """True/False: the installed Pillow went vertical/horizontal first; None: the orders agree here."""
    h_first, v_first = forced(image, out_hw, False), forced(image, out_hw, True)
    if np.array_equal(h_first, v_first):
        return None
    full = pil(image, out_hw)
    assert np.array_equal(full, v_first) or np.array_equal(full, h_first), "Pillow gave neither order"
    return bool(np.array_equal(full, v_first))


def random_image(hw: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, hw, dtype=np.uint8)


def installed_rule_is_constant() -> bool:
    """Whether the installed release always goes horizontal first (10.0 .. 12.1)."""
    rule, _ = pillow_resize.pass_order_rule()
    return rule is pillow_resize.PASS_ORDER_RULES[(10, 0)]


# -- the rule against the installed Pillow: a dense sweep of extreme aspect ratios ----
@pytest.mark.parametrize("long_side", LONG_SIDES)
def test_sweep_tall_and_wide_strips_are_exact(long_side):
    """Sources long_side x 1..16 and their transposes, every (out_h, out_w) in OUT_SIDES**2.

    Per geometry: the installed Pillow's resize equals the order the table
    predicts (on a gray image), and so do ``resize_reference`` (gray) and
    the CPU path (``cpu.resize_frame``, RGB).
    """
    failures: list[str] = []
    told_apart = {True: 0, False: 0}  # geometries whose two orders differ, by predicted order
    cases = 0
    for narrow in range(1, 17):
        for in_hw in ((long_side, narrow), (narrow, long_side)):
            gray = random_image(in_hw, seed=in_hw[0] * 31 + in_hw[1])
            rgb = random_image(in_hw + (3,), seed=in_hw[0] * 37 + in_hw[1])
            for out_hw in ((oh, ow) for oh in OUT_SIDES for ow in OUT_SIDES):
                cases += 1
                predicted = pillow_resize.vertical_first(in_hw, out_hw)
                full = pil(gray, out_hw)
                h_first, v_first = forced(gray, out_hw, False), forced(gray, out_hw, True)
                if not np.array_equal(h_first, v_first):
                    told_apart[predicted] += 1
                if not np.array_equal(full, v_first if predicted else h_first):
                    failures.append(f"{in_hw}->{out_hw}: Pillow is not {'vertical' if predicted else 'horizontal'} first")
                if not np.array_equal(pillow_resize.resize_reference(gray, out_hw), full):
                    failures.append(f"{in_hw}->{out_hw}: resize_reference differs")
                if not np.array_equal(resize_frame(rgb, out_hw), pil(rgb, out_hw)):
                    failures.append(f"{in_hw}->{out_hw}: cpu.resize_frame differs")
    assert not failures, f"Pillow {PIL.__version__}: {len(failures)} failures, first: {failures[:5]}"
    # Not vacuous: most geometries tell the orders apart, and (on a release with a
    # real rule) both orders are predicted on some of those.
    assert sum(told_apart.values()) > cases // 2, told_apart
    if not installed_rule_is_constant():
        assert told_apart[True] > 0 and told_apart[False] > 0, told_apart


def boundary_geometries() -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Geometries one pixel either side of each release's threshold."""
    cases = []
    for in_w in range(1, 9):  # 12.2/12.3: in_h > 100 * in_w (and out_h < in_h)
        for in_h in (100 * in_w, 100 * in_w + 1):
            cases += [((in_h, in_w), (out_h, out_w)) for out_h in (7, in_h - 1) for out_w in (2, 31)]
    for in_w, out_w in ((20, 4), (33, 9), (64, 17), (9, 33)):  # 13: (in_h - out_h) > 2 * (in_w - out_w)
        for out_h in (5, 30):
            for step in (-1, 0, 1):
                in_h = out_h + 2 * (in_w - out_w) + step
                if in_h > 0 and in_h != out_h:
                    cases.append(((in_h, in_w), (out_h, out_w)))
    return cases


def test_sweep_around_each_rule_boundary():
    """Both sides of 12.3's ``in_h > 100 * in_w`` and of 13's ``dh > 2 * dw``, on the installed Pillow."""
    failures, told_apart = [], 0
    for in_hw, out_hw in boundary_geometries():
        order = observed_order(random_image(in_hw, seed=in_hw[0] * 3 + in_hw[1]), out_hw)
        if order is None:
            continue
        told_apart += 1
        if pillow_resize.vertical_first(in_hw, out_hw) != order:
            failures.append((in_hw, out_hw, "vertical" if order else "horizontal"))
    assert not failures, f"Pillow {PIL.__version__} went the other way: {failures[:5]}"
    assert told_apart > 0.8 * len(boundary_geometries())


@pytest.mark.parametrize(
    "in_hw,out_hw",
    [
        ((1080, 1920), (312, 312)),  # 1080p
        ((1920, 1080), (312, 312)),  # portrait 1080x1920: vertical first on 13
        ((2160, 3840), (312, 312)),  # 4K
        ((3840, 2160), (312, 312)),  # portrait 4K: 3528 <= 2 * 1848, horizontal first on 13
        ((2160, 3840), (432, 432)),
        ((720, 1280), (768, 768)),  # upscale rows, reduce columns
    ],
)
def test_ordinary_sizes_are_exact(in_hw, out_hw):
    gray = random_image(in_hw, seed=sum(in_hw))
    order = observed_order(gray, out_hw)
    assert order is not None, "case does not tell the orders apart"
    assert pillow_resize.vertical_first(in_hw, out_hw) == order
    np.testing.assert_array_equal(pillow_resize.resize_reference(gray, out_hw), pil(gray, out_hw))
    rgb = random_image(in_hw + (3,), seed=sum(in_hw) + 1)
    np.testing.assert_array_equal(resize_frame(rgb, out_hw), pil(rgb, out_hw))


# -- the bug report: frames a few pixels wide, upscaled across, reduced down ---------
@pytest.mark.parametrize("in_hw", [(1000, 3), (1601, 4)])
def test_narrow_frames_upscaled_across_and_reduced_down_are_exact(in_hw):
    """Pillow 12.3 splits these (in_h > 100 * in_w): vertical first; so does 13. Was wrong before."""
    out_hw = (312, 312)
    frame = random_image(in_hw + (3,), seed=in_hw[0])
    expected = pil(frame, out_hw)
    order = observed_order(frame, out_hw)
    assert order is not None and pillow_resize.vertical_first(in_hw, out_hw) == order
    np.testing.assert_array_equal(pillow_resize.resize_reference(frame, out_hw), expected)
    np.testing.assert_array_equal(resize_frame(frame, out_hw), expected)
    out = torch.empty(1, 3, *out_hw)
    _, used = api.preprocess_into(frame, out, 0, flags=Flags())
    assert used in (api.NATIVE, api.CPU)  # the self-check agrees with the rule
    assert torch.equal(out, preprocess_reference(frame, out_hw)[0])


# -- the table itself ------------------------------------------------------------------
# (in_hw, out_hw) -> vertical first on 12.1.1, 12.3.0, 13.0.0: cases where releases disagree.
TABLE_CASES = [
    (((1000, 5), (995, 1)), (False, True, False)),  # tall and narrow, barely reduced
    (((700, 6), (695, 2)), (False, True, False)),
    (((1920, 1080), (312, 312)), (False, False, True)),  # portrait frame to a model input
    (((1000, 3), (312, 312)), (False, True, True)),  # the bug report
    (((1600, 16), (312, 312)), (False, False, True)),  # 1600 == 100 * 16: not "tall" on 12.3
    (((1601, 16), (312, 312)), (False, True, True)),
    (((62, 20), (30, 4)), (False, False, False)),  # 13: 32 == 2 * 16 is not more
    (((63, 20), (30, 4)), (False, False, True)),
    (((1000, 5), (1000, 1)), (False, False, False)),  # no vertical reduction
    (((1080, 1920), (312, 312)), (False, False, False)),
]


@pytest.mark.parametrize("geometry,expected", TABLE_CASES)
def test_table_by_version_string(geometry, expected):
    in_hw, out_hw = geometry
    got = tuple(pillow_resize.vertical_first(in_hw, out_hw, v) for v in ("12.1.1", "12.3.0", "13.0.0"))
    assert got == expected
    # Same rule within a rule's range of releases.
    assert pillow_resize.vertical_first(in_hw, out_hw, "10.0.1") == expected[0]
    assert pillow_resize.vertical_first(in_hw, out_hw, "12.2.0") == expected[1]


@pytest.mark.parametrize("geometry", [g for g, _ in TABLE_CASES if g[0][0] != g[1][0] and g[0][1] != g[1][1]])
def test_table_cases_against_installed_pillow(geometry):
    """The cases above, on the installed Pillow's bytes: its entry predicts what it does."""
    in_hw, out_hw = geometry
    order = observed_order(random_image(in_hw, seed=in_hw[0] + out_hw[1]), out_hw)
    assert order is not None, "case does not tell the orders apart"
    assert pillow_resize.vertical_first(in_hw, out_hw) == order


def test_table_covers_every_supported_release_and_cites_its_source():
    releases = {(10, m) for m in range(5)} | {(11, m) for m in range(4)} | {(12, m) for m in range(4)} | {(13, 0)}
    assert set(pillow_resize.PASS_ORDER_RULES) == releases
    source = inspect.getsource(pillow_resize).splitlines()
    for number, line in enumerate(source):
        if re.match(r"\s+\(\d+, \d+\): _", line):  # a table entry: the comment above cites file:line
            comment = source[number - 1]
            assert re.search(r"(Image\.py|Resample\.c):\d+", comment), f"no citation above {line.strip()}"


def test_installed_release_is_in_the_table():
    assert pillow_resize.pass_order_rule() == (pillow_resize.PASS_ORDER_RULES[pillow_resize.pillow_version()], True)


@pytest.mark.parametrize(
    "version,known",
    [("14.0.0", (13, 0)), ("13.1.0", (13, 0)), ("12.4.0", (12, 3)), ("9.5.0", (10, 0)), ("12.3.0.dev0", (12, 3))],
)
def test_releases_outside_the_table_are_unverified(version, known):
    rule, verified = pillow_resize.pass_order_rule(version)
    assert rule is pillow_resize.PASS_ORDER_RULES[known]
    assert verified == (pillow_resize.pillow_version(version) in pillow_resize.PASS_ORDER_RULES)


# -- the runtime self-check ------------------------------------------------------------
SELF_CHECK_CASES = [
    ((1920, 1080), (312, 312)),
    ((1080, 1920), (312, 312)),
    ((1000, 3), (312, 312)),
    ((1601, 4), (312, 312)),
    ((700, 6), (695, 2)),  # 12.3 and 13 disagree
    ((1600, 16), (31, 17)),  # 12.3 and 13 disagree
    ((10, 1), (4, 3)),  # a 1-pixel-wide source: both orders give the same bytes
    ((30, 40), (30, 16)),  # one pass
    ((5, 5), (5, 5)),  # identity
]


@pytest.mark.parametrize("in_hw,out_hw", SELF_CHECK_CASES)
def test_self_check_accepts_the_installed_pillow(in_hw, out_hw):
    assert pillow_resize.pass_order_mismatch(in_hw, out_hw) is None


def invert_rule(monkeypatch) -> None:
    """Make ``vertical_first`` (hence ``pass_sizes``, the CPU and Triton paths) predict the wrong order."""
    real = pillow_resize.vertical_first
    monkeypatch.setattr(pillow_resize, "vertical_first", lambda i, o, v=None: not real(i, o, v))


@pytest.mark.parametrize("in_hw,out_hw", SELF_CHECK_CASES[:6])
def test_self_check_reports_a_wrong_rule(monkeypatch, in_hw, out_hw):
    actual = observed_order(random_image(in_hw, seed=1), out_hw)
    assert actual is not None, "case does not tell the orders apart"
    invert_rule(monkeypatch)
    reason = pillow_resize.pass_order_mismatch(in_hw, out_hw)
    assert reason is not None
    assert f"Pillow {PIL.__version__}" in reason
    assert f"{in_hw[0]}x{in_hw[1]} -> {out_hw[0]}x{out_hw[1]}" in reason
    seen, predicted = ("vertical first", "horizontal first") if actual else ("horizontal first", "vertical first")
    assert f"(HxW) {seen}" in reason and reason.endswith(f"predicts {predicted}")


def test_self_check_trusts_a_known_rule_where_the_orders_agree(monkeypatch):
    invert_rule(monkeypatch)
    assert pillow_resize.pass_order_mismatch((10, 1), (4, 3)) is None  # same bytes in both orders


def test_self_check_reports_bytes_of_neither_order(monkeypatch):
    """A Pillow whose full resize is neither two-pass order (faked by mirroring its result)."""
    in_size, out_size = (40, 90), (12, 20)  # PIL (w, h)
    real_resize = Image.Image.resize

    def fake(self, size, *args, **kwargs):
        result = real_resize(self, size, *args, **kwargs)
        if self.size == in_size and tuple(size) == out_size:
            return result.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return result

    monkeypatch.setattr(Image.Image, "resize", fake)
    reason = pillow_resize.pass_order_mismatch((90, 40), (20, 12))
    assert reason is not None and "neither two-pass order" in reason


def test_unverified_release_needs_bytes_that_tell_the_orders_apart(monkeypatch):
    """An unknown release (faked: PIL.__version__ = 14.0.0) gets 13.0's rule, trusted only if confirmed."""
    cases = [((1920, 1080), (312, 312)), ((700, 6), (695, 2))]
    actual = [observed_order(random_image(i, seed=2), o) for i, o in cases]
    monkeypatch.setattr(PIL, "__version__", "14.0.0")
    assert pillow_resize.pass_order_rule() == (pillow_resize.PASS_ORDER_RULES[(13, 0)], False)
    for (in_hw, out_hw), order in zip(cases, actual):
        reason = pillow_resize.pass_order_mismatch(in_hw, out_hw)
        if order == pillow_resize.vertical_first(in_hw, out_hw):
            assert reason is None
        else:  # e.g. the installed 12.3 does (700, 6) -> (695, 2) vertical first; 13.0's rule says not
            assert reason is not None and "unverified rule (Pillow 14.0.0" in reason
    reason = pillow_resize.pass_order_mismatch((10, 1), (4, 3))  # both orders agree on the probe
    assert reason is not None and "cannot confirm" in reason and "unverified" in reason


def test_self_check_probes_each_geometry_once(monkeypatch):
    calls = []
    real_probe = pillow_resize._probe_image  # noqa: SLF001
    monkeypatch.setattr(pillow_resize, "_probe_image", lambda hw: calls.append(hw) or real_probe(hw))
    for _ in range(3):
        assert pillow_resize.pass_order_mismatch((480, 640), (312, 312)) is None
        assert pillow_resize.pass_order_mismatch((640, 480), (312, 312)) is None
    assert calls == [(480, 640), (640, 480)]


def test_self_check_of_a_4k_frame_is_cheap():
    """Docstring figure: ~26 ms on the 2-core dev machine; the bound leaves room for load."""
    start = time.perf_counter()
    assert pillow_resize.pass_order_mismatch((2160, 3840), (312, 312)) is None
    assert time.perf_counter() - start < 1.0


# -- the self-check in the dispatcher: a wrong rule sends the frame to the reference ----
@pytest.mark.parametrize("claim_cuda", [False, True])
def test_wrong_rule_falls_back_to_reference(monkeypatch, caplog, claim_cuda):
    """With the rule inverted the fast paths would be wrong; preprocess_into must not use them."""
    monkeypatch.setattr(api, "_cuda_available", lambda: claim_cuda)
    frame = random_image((200, 60, 3), seed=4)
    out_hw = (32, 32)
    invert_rule(monkeypatch)
    assert not np.array_equal(resize_frame(frame, out_hw), pil(frame, out_hw)), "the CPU path would be wrong"
    expected = preprocess_reference(frame, out_hw)[0][0]
    out = torch.full((1, 3, *out_hw), 7.0)
    with caplog.at_level(logging.WARNING, logger="inference_accel"):
        for _ in range(3):
            _, used = api.preprocess_into(frame, out, 0, flags=Flags())
            assert used == "reference"
            assert torch.equal(out[0], expected)
    warnings = [r.getMessage() for r in caplog.records if "predicts" in r.getMessage()]
    paths = {"cpu", "triton"} if claim_cuda else {"cpu"}
    if native.native_reason() is None:
        paths.add(api.NATIVE)
    assert len(warnings) == len(paths), warnings  # once per path, not per frame
    for path in paths:
        assert any(f"{path} path cannot take this input" in w and f"Pillow {PIL.__version__}" in w for w in warnings)
