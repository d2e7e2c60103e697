import pytest

from inference_accel.errors import FlagValueError
from inference_accel.flags import (
    CUDA_GRAPHS_FLAG,
    PIPELINE_DEPTH_FLAG,
    POSTPROC_FLAG,
    PREPROC_FLAG,
    Flags,
    read_flags,
    resolve_flags,
)


def test_defaults_when_unset():
    assert read_flags({}) == Flags(preproc_fast=True, postproc_fast=True, cuda_graphs=True, pipeline_depth=1)


@pytest.mark.parametrize("value,expected", [("false", False), ("0", False), ("OFF", False), ("True", True), ("1", True), (" yes ", True)])
def test_boolean_values(value, expected):
    flags = read_flags({PREPROC_FLAG: value, POSTPROC_FLAG: value, CUDA_GRAPHS_FLAG: value})
    assert flags.preproc_fast is expected and flags.postproc_fast is expected and flags.cuda_graphs is expected


@pytest.mark.parametrize("name", [PREPROC_FLAG, POSTPROC_FLAG, CUDA_GRAPHS_FLAG])
def test_bad_boolean_names_the_flag(name):
    with pytest.raises(FlagValueError, match=name):
        read_flags({name: "maybe"})


@pytest.mark.parametrize("value", ["3", "0", "two", "1.5"])
def test_bad_depth_is_a_clear_error(value):
    with pytest.raises(FlagValueError, match=PIPELINE_DEPTH_FLAG):
        read_flags({PIPELINE_DEPTH_FLAG: value})


def test_cli_overrides_environment():
    env = {PREPROC_FLAG: "false", PIPELINE_DEPTH_FLAG: "2"}
    flags = resolve_flags(preproc_fast=True, pipeline_depth=1, environ=env)
    assert flags.preproc_fast is True and flags.pipeline_depth == 1
    assert resolve_flags(environ=env).preproc_fast is False
    with pytest.raises(FlagValueError):
        resolve_flags(pipeline_depth=5, environ={})


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "1000000"])
def test_bad_postproc_threads_is_a_clear_error(value):
    from inference_accel.flags import POSTPROC_THREADS_FLAG, read_postproc_threads

    with pytest.raises(FlagValueError, match=POSTPROC_THREADS_FLAG):
        read_postproc_threads({POSTPROC_THREADS_FLAG: value})
    assert read_postproc_threads({}) is None and read_postproc_threads({POSTPROC_THREADS_FLAG: " 3 "}) == 3


def test_postproc_native_switch_values():
    from inference_accel.flags import POSTPROC_NATIVE_FLAG, read_postproc_native

    assert read_postproc_native({}) is True
    assert read_postproc_native({POSTPROC_NATIVE_FLAG: "false"}) is False
    with pytest.raises(FlagValueError, match=POSTPROC_NATIVE_FLAG):
        read_postproc_native({POSTPROC_NATIVE_FLAG: "sometimes"})


def test_response_native_switch_is_checked_at_startup():
    from inference_accel.flags import RESPONSE_NATIVE_FLAG, read_flags, read_response_native

    assert read_response_native({}) is True
    assert read_response_native({RESPONSE_NATIVE_FLAG: "off"}) is False
    with pytest.raises(FlagValueError, match=RESPONSE_NATIVE_FLAG):
        read_flags({RESPONSE_NATIVE_FLAG: "sometimes"})
