"""Native foo kernels against CPU PyTorch on the same inputs (hypothesis property tests).

Inputs cover dtypes float32/float64/float16/bfloat16/int32/int64/bool, shapes from 0-d to 4-d including 0-size,
non-contiguous layouts (transposed, strided slices), broadcasting, CPU 0-dim scalars, both devices, and the
functional, in-place and out= forms. Whenever CPU raises, foo must raise the same exception type.
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

import torch_foo
from helpers import assert_same

ALL_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int64, torch.bool]
FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DEVICES = st.sampled_from(["foo:0", "foo:1"])
shapes = st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple)


def make(shape, dtype, layout, seed):
    """A CPU tensor of `shape` with the given memory layout."""
    gen_shape = list(shape)
    if layout == "transposed" and len(shape) >= 2:
        gen_shape[-1], gen_shape[-2] = gen_shape[-2], gen_shape[-1]
    elif layout == "strided" and len(shape) >= 1:
        gen_shape[-1] *= 2
    torch.manual_seed(seed)
    low, high = (-4, 4) if dtype != torch.bool else (None, None)
    base = torch.testing.make_tensor(gen_shape, dtype=dtype, device="cpu", low=low, high=high)
    if layout == "transposed" and len(shape) >= 2:
        return base.transpose(-1, -2)
    if layout == "strided" and len(shape) >= 1:
        return base[..., ::2]
    return base


@st.composite
def tensors(draw, dtypes=ALL_DTYPES, shape=None):
    shape = draw(shapes) if shape is None else shape
    return make(shape, draw(st.sampled_from(dtypes)), draw(st.sampled_from(["contiguous", "transposed", "strided"])),
                draw(st.integers(0, 2**31 - 1)))


@st.composite
def broadcast_shape(draw, shape):
    """A shape broadcastable with `shape` (dims dropped from the front or set to 1)."""
    keep = draw(st.integers(0, len(shape)))
    tail = shape[len(shape) - keep:]
    return tuple(draw(st.sampled_from([d, 1])) for d in tail)


def to_foo(value, device):
    """foo copy of a tensor argument; 0-dim CPU tensors marked `cpu_scalar` and non-tensors stay as they are."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    return value


def check(fn, *args, device="foo:0", cpu_scalar_positions=(), **tolerances):
    """fn on CPU vs fn on foo (arguments moved to `device`, except positions kept as CPU 0-dim scalars)."""
    foo_args = [a if i in cpu_scalar_positions else to_foo(a, device) for i, a in enumerate(args)]
    try:
        expected = fn(*args)
    except Exception as exc:  # foo must refuse the same inputs the same way
        with pytest.raises(type(exc)):
            fn(*foo_args)
        return
    actual = fn(*foo_args)
    if isinstance(expected, torch.Tensor):
        assert actual.device == torch.device(device)
    assert_same(actual, expected, **tolerances)


def variants(op_name):
    """Functional, in-place and out= forms of a torch op, each as f(*tensors)."""
    op = getattr(torch, op_name)

    def inplace(a, *rest):
        return getattr(a.clone(), op_name + "_")(*rest)

    def out(a, *rest):
        result = op(a, *rest)  # dtype and shape of the out tensor come from the functional form
        target = torch.empty(0, dtype=result.dtype, device=a.device)
        returned = op(a, *rest, out=target)
        assert returned is target
        return target

    return [op, inplace, out]


BINARY = ["add", "sub", "mul", "div", "pow", "eq", "ne", "lt", "le", "gt", "ge", "maximum", "minimum"]


@pytest.mark.parametrize("op_name", BINARY)
@given(data=st.data())
def test_binary(op_name, data):
    a = data.draw(tensors())
    b = data.draw(tensors(shape=data.draw(broadcast_shape(a.shape))))
    device = data.draw(DEVICES)
    for fn in variants(op_name):
        check(fn, a, b, device=device)


@pytest.mark.parametrize("op_name", ["add", "mul", "sub", "div"])
@given(a=tensors(), scalar=st.one_of(st.integers(-3, 3), st.floats(-3, 3)), device=DEVICES)
def test_binary_with_scalars(op_name, a, scalar, device):
    op = getattr(torch, op_name)
    check(lambda x: op(x, scalar), a, device=device)
    check(lambda x, s: op(x, s), a, torch.tensor(scalar), device=device, cpu_scalar_positions=(1,))


UNARY = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu"]


@pytest.mark.parametrize("op_name", UNARY)
@given(a=tensors(), device=DEVICES)
def test_unary(op_name, a, device):
    for fn in variants(op_name) if op_name != "relu" else [torch.relu, lambda x: x.clone().relu_()]:
        check(fn, a, device=device)


@pytest.mark.parametrize("fn", [F.gelu, lambda x: F.gelu(x, approximate="tanh"), F.silu,
                                lambda x: torch.clamp(x, -1, 2), lambda x: torch.clamp(x, min=0.5),
                                lambda x: x.clone().clamp_(max=1), lambda x: x.clone().fill_(3),
                                lambda x: x.clone().zero_()])
@given(a=tensors(), device=DEVICES)
def test_activations_and_fills(fn, a, device):
    check(fn, a, device=device)


@given(data=st.data())
def test_where(data):
    a = data.draw(tensors())
    cond = data.draw(tensors(dtypes=[torch.bool], shape=data.draw(broadcast_shape(a.shape))))
    b = data.draw(tensors(shape=data.draw(broadcast_shape(a.shape))))
    check(torch.where, cond, a, b, device=data.draw(DEVICES))


@st.composite
def reduction_args(draw):
    a = draw(tensors())
    dims = draw(st.lists(st.integers(-max(a.dim(), 1), max(a.dim(), 1) - 1), max_size=2, unique=True)) if a.dim() else []
    return a, dims, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std", "sum_dtype"])
@given(args=reduction_args(), device=DEVICES)
def test_reductions_over_dims(name, args, device):
    a, dims, keepdim = args
    fns = {
        "sum": lambda x: torch.sum(x, dims, keepdim=keepdim),
        "mean": lambda x: torch.mean(x, dims, keepdim=keepdim),
        "amax": lambda x: torch.amax(x, dims, keepdim=keepdim),
        "amin": lambda x: torch.amin(x, dims, keepdim=keepdim),
        "var": lambda x: torch.var(x, dims or None, keepdim=keepdim),
        "std": lambda x: torch.std(x, dims or None, correction=0, keepdim=keepdim),
        "sum_dtype": lambda x: torch.sum(x, dims, keepdim=keepdim, dtype=torch.float64),
    }
    check(fns[name], a, device=device)


@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin", "max_full", "sum_full"])
@given(args=reduction_args(), device=DEVICES)
def test_reductions_with_one_dim(name, args, device):
    a, dims, keepdim = args
    dim = dims[0] if dims else 0
    fns = {
        "max": lambda x: tuple(torch.max(x, dim, keepdim=keepdim)),
        "min": lambda x: tuple(torch.min(x, dim, keepdim=keepdim)),
        "argmax": lambda x: torch.argmax(x, dim, keepdim=keepdim),
        "argmin": lambda x: torch.argmin(x),
        "max_full": lambda x: torch.max(x),
        "sum_full": lambda x: torch.sum(x),
    }
    check(fns[name], a, device=device)


@st.composite
def matmul_args(draw):
    n, k, m, batch = (draw(st.integers(0, 6)) for _ in range(4))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.int64]))
    layout = st.sampled_from(["contiguous", "transposed"])
    seed = draw(st.integers(0, 2**31 - 1))
    return [make(s, dtype, draw(layout), seed + i) for i, s in enumerate([(n, k), (k, m), (batch, n, k), (batch, k, m), (n, m), (k,)])]


@given(args=matmul_args(), device=DEVICES)
def test_linear_algebra(args, device):
    a, b, ba, bb, c, v = args
    check(torch.mm, a, b, device=device)
    check(lambda x, y, z: torch.addmm(z, x, y, beta=0.5, alpha=2), a, b, c, device=device)
    check(torch.bmm, ba, bb, device=device)
    check(torch.matmul, ba, b, device=device)
    check(torch.matmul, a, v, device=device)
    check(torch.dot, v, v, device=device)


@given(a=tensors(dtypes=[torch.float32, torch.float64], shape=None), device=DEVICES)
def test_softmax_family_with_backward(a, device):
    if a.dim() == 0:
        a = a.reshape(1)

    def forward_backward(fn):
        def run(x):
            x = x.detach().clone().requires_grad_()
            y = fn(x)
            (y * torch.arange(y.numel(), dtype=y.dtype, device=y.device).reshape(y.shape)).sum().backward()
            return y.detach(), x.grad
        return run

    for fn in (lambda x: torch.softmax(x, -1), lambda x: torch.log_softmax(x, 0), torch.relu, torch.tanh,
               torch.sigmoid, F.gelu, F.silu):
        check(forward_backward(fn), a, device=device)


@given(n=st.integers(1, 6), classes=st.integers(1, 5), seed=st.integers(0, 1000), device=DEVICES,
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_forward_backward(n, classes, seed, device, reduction):
    torch.manual_seed(seed)
    logits = torch.randn(n, classes)
    target = torch.randint(0, classes, (n,))

    def run(x, t):
        x = x.detach().clone().requires_grad_()
        loss = F.cross_entropy(x, t, reduction=reduction)
        loss.sum().backward()
        return loss.detach(), x.grad

    check(run, logits, target, device=device)


def test_native_ops_do_not_fall_back():
    torch_foo.reset_fallback_stats()
    a = torch.randn(4, 4, device="foo")
    b = torch.randn(4, 4, device="foo")
    for result in (a + b, a - b, a * b, a / b, a ** 2, -a, a.abs(), a.exp(), a.relu(), F.gelu(a), F.silu(a),
                   a.clamp(0, 1), torch.where(a > 0, a, b), a.sum(), a.mean(1), a.amax(0), a.max(1), a.argmax(),
                   a.var(0), a.std(), a @ b, torch.addmm(a, a, b), torch.bmm(a[None], b[None]), a[0].dot(b[0]),
                   torch.softmax(a, 1), torch.log_softmax(a, 1), a.sigmoid(), a.tanh(), a.sqrt(), a.rsqrt()):
        del result
    a.fill_(1)
    a.zero_()
    assert torch_foo.fallback_stats() == {}


def test_overlapping_output_rejected_like_cpu():
    check(lambda x: x.expand(3, 4).add_(1), torch.arange(4.0))
