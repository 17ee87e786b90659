"""``torch_foo.testing``: helpers for tests of code that runs on foo (needs ``hypothesis``).

- Strategies: ``foo_tensors(...)`` draws foo tensors over dtypes, shapes (0-dim and 0-size included), memory layouts
  (contiguous, transposed, strided slices, broadcast views) and devices foo:0/foo:1; ``shapes()`` and
  ``broadcastable_shapes(shape)`` draw shapes.
- ``assert_matches_cpu(fn, *args)`` runs ``fn`` on CPU twins of the arguments and on the foo arguments and checks
  that the results agree: values, dtypes, shapes, the foo device of every output, in-place changes to the arguments,
  the same exception type when CPU raises; it returns the ops that ran through the CPU fallback meanwhile (and checks
  them against ``fallbacks`` when given).
- ``assert_same(foo_result, cpu_result)`` is the comparison on its own.
- A hypothesis settings profile, ``PROFILE`` ("torch_foo"): no deadline (the first example of a run pays one-off
  warm-up costs that a deadline counts against it) and no too-slow health check. ``settings.load_profile(PROFILE)``,
  or ``@settings(parent=settings.get_profile(PROFILE), max_examples=...)``.

Example::

    from hypothesis import given, settings
    from torch_foo.testing import PROFILE, assert_matches_cpu, foo_tensors

    settings.load_profile(PROFILE)

    @given(foo_tensors(dtypes=[torch.float32, torch.float16]))
    def test_softplus(x):
        assert_matches_cpu(torch.nn.functional.softplus, x, fallbacks=())  # and natively, no CPU fallback
"""
from __future__ import annotations

from typing import Any, Callable, Collection, Sequence

import torch
from hypothesis import HealthCheck, settings, strategies as st

import torch_foo

__all__ = [
    "PROFILE", "DTYPES", "FLOAT_DTYPES", "DEVICES", "LAYOUTS",
    "shapes", "broadcastable_shapes", "foo_tensors", "assert_matches_cpu", "assert_same",
]

PROFILE = "torch_foo"
settings.register_profile(
    PROFILE, deadline=None, max_examples=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
DTYPES = (*FLOAT_DTYPES, torch.int32, torch.int64, torch.bool)
DEVICES = ("foo:0", "foo:1")
LAYOUTS = ("contiguous", "transposed", "strided", "broadcast")


def shapes(min_dims: int = 0, max_dims: int = 4, max_side: int = 5) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes of min_dims..max_dims dimensions with sides 0..max_side: 0-dim and 0-size shapes included."""
    return st.lists(st.integers(0, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcastable_shapes(draw: st.DrawFn, shape: Sequence[int]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape``: leading dimensions dropped, others kept or set to 1."""
    keep = draw(st.integers(0, len(shape)))
    return tuple(draw(st.sampled_from([side, 1])) for side in shape[len(shape) - keep:])


def _random_values(shape: Sequence[int], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """CPU values in [-4, 4) from a private generator (the global RNG stays untouched); bools half true."""
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, tuple(shape), generator=generator).bool()
    if dtype.is_floating_point:
        return torch.empty(tuple(shape), dtype=torch.float64).uniform_(-4, 4, generator=generator).to(dtype)
    return torch.randint(-4, 4, tuple(shape), generator=generator, dtype=dtype)


@st.composite
def foo_tensors(draw: st.DrawFn, dtypes: Sequence[torch.dtype] = DTYPES, shape: Sequence[int] | None = None,
                devices: Sequence[str] = DEVICES, layouts: Sequence[str] = LAYOUTS) -> torch.Tensor:
    """A foo tensor of a drawn dtype, shape (``shape`` fixes it), device and layout.

    Layouts are made on the device, as views of a foo tensor: "transposed" (last two dimensions swapped in memory),
    "strided" (every other element of the last dimension), "broadcast" (some dimensions expanded from size 1, stride
    0: do not write into it in place). A layout that does not apply to the shape (transposed 1-d) gives a contiguous
    tensor.
    """
    shape = tuple(draw(shapes()) if shape is None else shape)
    dtype = draw(st.sampled_from(list(dtypes)))
    layout = draw(st.sampled_from(list(layouts)))
    device = draw(st.sampled_from(list(devices)))
    seed = draw(st.integers(0, 2**31 - 1))
    if layout == "transposed" and len(shape) >= 2:
        stored = (*shape[:-2], shape[-1], shape[-2])
        return _random_values(stored, dtype, seed).to(device).transpose(-1, -2)
    if layout == "strided" and len(shape) >= 1:
        return _random_values((*shape[:-1], 2 * shape[-1]), dtype, seed).to(device)[..., ::2]
    if layout == "broadcast" and len(shape) >= 1:
        stored = tuple(draw(st.sampled_from([side, 1])) for side in shape)
        return _random_values(stored, dtype, seed).to(device).expand(shape)
    return _random_values(shape, dtype, seed).to(device)


def assert_same(foo_result: Any, cpu_result: Any, device: str | torch.device | None = None,
                **tolerances: Any) -> None:
    """foo result equals the CPU result: same dtype, shape and values (NaNs equal), on a foo device.

    With ``device`` (e.g. "foo:1") every tensor of the result, also inside tuples, lists and dicts, must be on exactly
    that device; without it, or with an index-less "foo", any foo device passes. ``tolerances`` (atol, rtol) go to
    torch.testing.assert_close; non-tensors compare with ==.
    """
    if isinstance(cpu_result, dict):
        assert isinstance(foo_result, dict) and foo_result.keys() == cpu_result.keys(), (foo_result, cpu_result)
        for key in cpu_result:
            assert_same(foo_result[key], cpu_result[key], device, **tolerances)
        return
    if isinstance(cpu_result, (tuple, list)) and not isinstance(cpu_result, torch.Size):
        assert isinstance(foo_result, (tuple, list)), type(foo_result)
        assert len(foo_result) == len(cpu_result), (len(foo_result), len(cpu_result))
        for foo_item, cpu_item in zip(foo_result, cpu_result):
            assert_same(foo_item, cpu_item, device, **tolerances)
        return
    if not isinstance(cpu_result, torch.Tensor):
        assert foo_result == cpu_result, (foo_result, cpu_result)
        return
    assert isinstance(foo_result, torch.Tensor), type(foo_result)
    expected = torch.device(device if device is not None else "foo")
    assert foo_result.device.type == expected.type, f"result on {foo_result.device}, expected {expected}"
    if expected.index is not None:
        assert foo_result.device == expected, f"result on {foo_result.device}, expected {expected}"
    assert foo_result.dtype == cpu_result.dtype, (foo_result.dtype, cpu_result.dtype)
    assert foo_result.shape == cpu_result.shape, (foo_result.shape, cpu_result.shape)
    torch.testing.assert_close(foo_result.cpu(), cpu_result, equal_nan=True, **tolerances)


def _cpu_twin(value: Any, storages: dict[int, torch.UntypedStorage]) -> Any:
    """A CPU copy of a foo tensor with the same sizes, strides and storage offset, over a CPU copy of its storage
    (one per foo storage, so arguments that alias on foo alias on CPU too); lists, tuples and dicts are copied item by
    item, anything else is passed as it is."""
    if isinstance(value, torch.Tensor) and value.device.type == "foo":
        key = value.untyped_storage().data_ptr()
        if key not in storages:
            storages[key] = value.untyped_storage().cpu()
        twin = torch.empty(0, dtype=value.dtype).set_(storages[key], value.storage_offset(), value.shape,
                                                       value.stride())
        return twin.requires_grad_(value.requires_grad) if value.is_leaf else twin
    if isinstance(value, (tuple, list)):
        return type(value)(_cpu_twin(item, storages) for item in value)
    if isinstance(value, dict):
        return {key: _cpu_twin(item, storages) for key, item in value.items()}
    return value


def _foo_tensor_pairs(value: Any, twin: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(foo tensor, its CPU twin) for every foo tensor of an argument structure and its twin from _cpu_twin."""
    if isinstance(value, torch.Tensor):
        return [(value, twin)] if value.device.type == "foo" else []
    if isinstance(value, (tuple, list)):
        return [pair for item, item_twin in zip(value, twin) for pair in _foo_tensor_pairs(item, item_twin)]
    if isinstance(value, dict):
        return [pair for key in value for pair in _foo_tensor_pairs(value[key], twin[key])]
    return []


def assert_matches_cpu(fn: Callable[..., Any], *args: Any, fallbacks: Collection[str] | None = None,
                       **tolerances: Any) -> dict[str, int]:
    """Runs ``fn(*args)`` on CPU twins of the foo arguments and on the foo arguments themselves, and checks that foo
    behaves as CPU: if CPU raises, foo raises the same exception type; otherwise the outputs match in values, dtypes
    and shapes (``tolerances``: atol/rtol of torch.testing.assert_close), every output tensor is on the device of the
    first foo argument, and the arguments fn changed in place match too. CPU tensors among the arguments (0-dim
    scalars, say) are passed to both runs as they are: fn should not change them.

    Returns the CPU-fallback report of the foo run ({aten op: count}, see torch_foo.fallback_stats). With
    ``fallbacks`` (a collection of op names such as "aten::cumsum"; empty for none), an op outside it that ran
    through the fallback fails the check.
    """
    cpu_args = _cpu_twin(list(args), {})
    arguments = _foo_tensor_pairs(list(args), cpu_args)
    if not arguments:
        raise ValueError("assert_matches_cpu needs at least one foo tensor among the arguments")
    device = arguments[0][0].device
    try:
        expected = fn(*cpu_args)
    except Exception as cpu_error:
        try:
            fn(*args)
        except type(cpu_error):
            return {}
        except Exception as foo_error:
            raise AssertionError(f"CPU raised {type(cpu_error).__name__} ({cpu_error}), foo raised "
                                 f"{type(foo_error).__name__} ({foo_error})") from foo_error
        raise AssertionError(f"CPU raised {type(cpu_error).__name__} ({cpu_error}), foo did not") from cpu_error
    before = torch_foo.fallback_stats()
    actual = fn(*args)
    after = torch_foo.fallback_stats()
    report = {op: count - before.get(op, 0) for op, count in after.items() if count != before.get(op, 0)}
    assert_same(actual, expected, device, **tolerances)
    for argument, twin in arguments:  # what fn changed in place (untouched arguments compare equal trivially)
        assert_same(argument, twin, argument.device, **tolerances)
    if fallbacks is not None:
        unexpected = sorted(set(report) - set(fallbacks))
        assert not unexpected, f"ran through the CPU fallback: {unexpected} (allowed: {sorted(fallbacks)})"
    return report
