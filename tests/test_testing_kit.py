"""torch_foo.testing: its strategies cover what they promise, assert_matches_cpu catches each kind of mismatch, and
property tests written with it (as users would) pass on foo."""
import pytest
import torch
from hypothesis import find, given, settings, strategies as st

import torch_foo  # noqa: F401  (registers foo; torch_foo.testing needs it too)
from torch_foo.testing import (
    FLOAT_DTYPES, PROFILE, assert_matches_cpu, broadcastable_shapes, foo_tensors, shapes,
)

kit = settings(parent=settings.get_profile(PROFILE), max_examples=25)


def test_profile_has_no_deadline():
    profile = settings.get_profile(PROFILE)
    assert profile.deadline is None and profile.max_examples > 0


@pytest.mark.parametrize("property_", [
    lambda t: t.dim() == 0,
    lambda t: t.numel() == 0 and t.dim() > 0,
    lambda t: not t.is_contiguous() and 0 not in t.stride() and t.numel() > 1,
    lambda t: 0 in t.stride() and t.numel() > 1,  # a broadcast view
    lambda t: t.device == torch.device("foo:1"),
    lambda t: t.dtype == torch.bfloat16,
    lambda t: t.dtype == torch.bool,
], ids=["0-dim", "0-size", "non-contiguous", "broadcast", "foo:1", "bfloat16", "bool"])
def test_foo_tensors_cover(property_):
    found = find(foo_tensors(), property_, settings=settings(max_examples=2000, database=None))
    assert found.device.type == "foo"


def test_foo_tensors_follow_their_arguments():
    found = find(foo_tensors(dtypes=[torch.int32], shape=(2, 3), devices=["foo:1"], layouts=["transposed"]),
                 lambda t: True, settings=settings(database=None))
    assert found.shape == (2, 3) and found.dtype == torch.int32 and found.device == torch.device("foo:1")
    assert found.stride() == (1, 2)


def test_assert_matches_cpu_catches_a_wrong_value():
    x = torch.arange(4.0, device="foo")
    with pytest.raises(AssertionError):
        assert_matches_cpu(lambda t: t + 1 if t.is_foo else t, x)


def test_assert_matches_cpu_catches_a_wrong_device_or_dtype():
    x = torch.arange(4.0, device="foo:1")
    with pytest.raises(AssertionError, match="foo:0"):
        assert_matches_cpu(lambda t: t.to("foo:0") if t.is_foo else t.clone(), x)
    with pytest.raises(AssertionError, match="float64"):
        assert_matches_cpu(lambda t: t.double() if t.is_foo else t.clone(), x)


def test_assert_matches_cpu_catches_an_in_place_difference():
    x = torch.arange(4.0, device="foo")
    with pytest.raises(AssertionError):
        assert_matches_cpu(lambda t: t.add_(1).sum() if t.is_foo else t.sum() + 4, x)


def test_assert_matches_cpu_checks_exceptions():
    x = torch.ones(2, 3, device="foo")
    assert assert_matches_cpu(lambda t: t @ t, x) == {}  # both raise RuntimeError: a match
    with pytest.raises(AssertionError, match="foo did not"):
        assert_matches_cpu(lambda t: t.sum() if t.is_foo else t @ t, x)
    with pytest.raises(AssertionError, match="foo raised ValueError"):
        def diverging(t):
            raise ValueError("foo") if t.is_foo else TypeError("cpu")
        assert_matches_cpu(diverging, x)


def test_assert_matches_cpu_reports_and_checks_fallbacks():
    x = torch.arange(5.0, device="foo")
    assert assert_matches_cpu(torch.cumsum, x, 0) == {"aten::cumsum": 1}
    assert assert_matches_cpu(torch.mul, x, x, fallbacks=()) == {}
    with pytest.raises(AssertionError, match="aten::cumsum"):
        assert_matches_cpu(torch.cumsum, x, 0, fallbacks=())
    assert assert_matches_cpu(torch.cumsum, x, 0, fallbacks={"aten::cumsum"}) == {"aten::cumsum": 1}
    with pytest.raises(ValueError, match="at least one foo tensor"):
        assert_matches_cpu(torch.cumsum, torch.arange(3.0), 0)


def test_assert_matches_cpu_keeps_aliasing():
    base = torch.zeros(6, device="foo:1")
    # two views of one storage: writing through one shows in the other on CPU as on foo
    report = assert_matches_cpu(lambda a, b: (a.add_(1), b.clone())[1], base[:4], base[2:])
    assert report == {}


# ---- property tests as a user writes them --------------------------------------------------------------------------
@kit
@given(foo_tensors(dtypes=FLOAT_DTYPES))
def test_unary_ops_match_cpu(x):
    for op in (torch.exp, torch.abs, torch.neg, torch.nn.functional.relu):
        assert_matches_cpu(op, x, fallbacks=())


@kit
@given(st.data())
def test_broadcast_binary_ops_match_cpu(data):
    shape = data.draw(shapes())
    a = data.draw(foo_tensors(shape=shape, devices=["foo:1"]))
    b = data.draw(foo_tensors(shape=data.draw(broadcastable_shapes(shape)), devices=["foo:1"]))
    for op in (torch.add, torch.mul, torch.maximum, torch.eq):
        assert_matches_cpu(op, a, b)


@kit
@given(foo_tensors(dtypes=[torch.float32, torch.int64], layouts=["contiguous", "transposed", "strided"]))
def test_in_place_and_reductions_match_cpu(x):
    assert_matches_cpu(lambda t: t.mul_(3), x)
    assert_matches_cpu(lambda t: t.sum(dim=-1) if t.dim() else t.sum(), x)
