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


def copy_to(value, device):
    """Copy of a tensor (or of each tensor of a list) on `device` with the same sizes and strides, so that the foo
    kernel sees the layout the CPU kernel sees (`.to()` and `.clone()` make strided slices contiguous); non-tensors
    stay as they are."""
    if isinstance(value, torch.Tensor):
        copy = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=device)
        assert copy.stride() == value.stride()
        return copy.copy_(value)
    if isinstance(value, (list, tuple)):
        return type(value)(copy_to(v, device) for v in value)
    return value


def check(fn, *args, device="foo:0", cpu_scalar_positions=(), **tolerances):
    """fn on CPU vs fn on foo (arguments moved to `device`, except positions kept as CPU 0-dim scalars)."""
    foo_args = [a if i in cpu_scalar_positions else copy_to(a, device) for i, a in enumerate(args)]
    try:
        expected = fn(*args)
    except Exception as exc:  # foo must refuse the same inputs the same way
        with pytest.raises(type(exc)):
            fn(*foo_args)
        return
    actual = fn(*foo_args)
    assert_same(actual, expected, device=device, **tolerances)


def call_out(op, *args, **kwargs):
    """op(*args, **kwargs, out=empty): the out tensor's dtype comes from the functional form, its device from the first
    non-CPU tensor argument; it starts with 0 elements, so the kernel must resize it."""
    result = op(*args, **kwargs)
    device = next((a.device for a in args if isinstance(a, torch.Tensor) and a.device.type != "cpu"), "cpu")
    target = torch.empty(0, dtype=result.dtype, device=device)
    returned = op(*args, **kwargs, out=target)
    assert returned is target
    return target


def variants(op_name, **kwargs):
    """Functional, in-place (if the op has one) and out= forms of a torch op, each as f(*tensors)."""
    op = getattr(torch, op_name)

    def functional(*args):
        return op(*args, **kwargs)

    def inplace(a, *rest):
        return getattr(copy_to(a, a.device), op_name + "_")(*rest, **kwargs)

    def out(*args):
        return call_out(op, *args, **kwargs)

    return [functional, out] + ([inplace] if hasattr(torch.Tensor, op_name + "_") else [])


BINARY = ["add", "sub", "mul", "div", "pow", "eq", "ne", "lt", "le", "gt", "ge", "maximum", "minimum"]
# (op, keyword arguments): every binary op plus its keyword forms (div's rounding modes, add/sub's alpha).
BINARY_FORMS = [(name, {}) for name in BINARY] + [
    ("div", {"rounding_mode": "trunc"}), ("div", {"rounding_mode": "floor"}), ("add", {"alpha": 2}),
    ("sub", {"alpha": -3}),
]


def form_id(form):
    return "-".join([form[0]] + [f"{k}={v}" for k, v in form[1].items()])


@pytest.mark.parametrize("op_name, kwargs", BINARY_FORMS, ids=map(form_id, BINARY_FORMS))
@given(data=st.data())
def test_binary(op_name, kwargs, data):
    a = data.draw(tensors())
    b = data.draw(tensors(shape=data.draw(broadcast_shape(a.shape))))
    device = data.draw(DEVICES)
    for fn in variants(op_name, **kwargs):
        check(fn, a, b, device=device)


@pytest.mark.parametrize("op_name, kwargs", BINARY_FORMS, ids=map(form_id, BINARY_FORMS))
@given(a=tensors(), scalar=st.one_of(st.integers(-3, 3), st.floats(-3, 3), st.booleans()), device=DEVICES)
def test_binary_with_scalars(op_name, kwargs, a, scalar, device):
    """A Python scalar or a CPU 0-dim tensor on either side (pow.Scalar for a scalar base), every form."""
    op = getattr(torch, op_name)
    for fn in variants(op_name, **kwargs):
        check(fn, a, scalar, device=device)
        check(fn, a, torch.tensor(scalar), device=device, cpu_scalar_positions=(1,))
    for fn in (lambda s, x: op(s, x, **kwargs), lambda s, x: call_out(op, s, x, **kwargs)):
        check(fn, scalar, a, device=device)
        check(fn, torch.tensor(scalar), a, device=device, cpu_scalar_positions=(0,))


UNARY = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu"]


@pytest.mark.parametrize("op_name", UNARY)
@given(a=tensors(), device=DEVICES)
def test_unary(op_name, a, device):
    for fn in variants(op_name) if op_name != "relu" else [torch.relu, lambda x: copy_to(x, x.device).relu_()]:
        check(fn, a, device=device)


@pytest.mark.parametrize("fn", [F.gelu, lambda x: F.gelu(x, approximate="tanh"), F.silu,
                                lambda x: copy_to(x, x.device).fill_(3), lambda x: copy_to(x, x.device).zero_()])
@given(a=tensors(), device=DEVICES)
def test_activations_and_fills(fn, a, device):
    check(fn, a, device=device)


SCALAR_ARGUMENT_FORMS = [("clamp", (-1, 2)), ("clamp", (0.5,)), ("clamp", (None, 1)), ("clamp_min", (0.5,)),
                         ("clamp_max", (-1,)), ("clamp_min", (True,)), ("clamp_max", (2.5,))]


@pytest.mark.parametrize("op_name, scalars", SCALAR_ARGUMENT_FORMS,
                         ids=[f"{name}{scalars}" for name, scalars in SCALAR_ARGUMENT_FORMS])
@given(a=tensors(), device=DEVICES)
def test_ops_with_scalar_arguments(op_name, scalars, a, device):
    for fn in variants(op_name):
        check(fn, a, *scalars, device=device)


@st.composite
def operands(draw, count, dtypes=ALL_DTYPES):
    """A tensor and `count` tensors broadcastable to it, half of them of its dtype; those that are 0-dim may be kept
    as CPU scalars. Returns (tensors, positions of the CPU scalars)."""
    a = draw(tensors(dtypes=dtypes))
    others = [draw(tensors(dtypes=[a.dtype] if draw(st.booleans()) else dtypes,
                           shape=draw(broadcast_shape(a.shape)))) for _ in range(count)]
    cpu_scalars = tuple(i + 1 for i, t in enumerate(others) if t.dim() == 0 and draw(st.booleans()))
    return [a] + others, cpu_scalars


# (op, its arguments made from a tensor a and two tensors b, c broadcastable to it, keyword arguments, dtypes)
TERNARY_FORMS = {
    "lerp-scalar_weight": ("lerp", lambda a, b, c: (a, b, 0.25), {}, FLOAT_DTYPES),
    "lerp-tensor_weight": ("lerp", lambda a, b, c: (a, b, c), {}, FLOAT_DTYPES),
    "addcmul": ("addcmul", lambda a, b, c: (a, b, c), {"value": -0.5}, ALL_DTYPES),
    "addcdiv": ("addcdiv", lambda a, b, c: (a, b, c), {"value": 2}, ALL_DTYPES),
    "clamp-tensors": ("clamp", lambda a, b, c: (a, b, c), {}, ALL_DTYPES),
    "clamp-tensor_min": ("clamp", lambda a, b, c: (a, b), {}, ALL_DTYPES),
    "clamp-tensor_max": ("clamp", lambda a, b, c: (a, None, c), {}, ALL_DTYPES),
    "where": ("where", lambda a, b, c: (b > 0, a, c), {}, ALL_DTYPES),
}


@pytest.mark.parametrize("form", list(TERNARY_FORMS))
@given(data=st.data(), device=DEVICES)
def test_ternary(form, data, device):
    """lerp, addcmul, addcdiv, clamp with Tensor bounds and where: every form, broadcasting, CPU 0-dim operands."""
    op_name, arrange, kwargs, dtypes = TERNARY_FORMS[form]
    (a, b, c), cpu_scalars = data.draw(operands(2, dtypes))
    for fn in variants(op_name, **kwargs):
        check(lambda x, y, z: fn(*arrange(x, y, z)), a, b, c, device=device, cpu_scalar_positions=cpu_scalars)


@given(a=tensors(), value=tensors(shape=()), on_cpu=st.booleans(), device=DEVICES)
def test_fill_with_0dim_tensor(a, value, on_cpu, device):
    check(lambda x, v: copy_to(x, x.device).fill_(v), a, value, device=device,
          cpu_scalar_positions=(1,) if on_cpu else ())


@given(a=tensors(), data=st.data(), device=DEVICES)
def test_index_select_and_gather(a, data, device):
    """Indices drawn in range and out of it (CPU's IndexError), 0-size and non-contiguous; functional and out=."""
    dim = data.draw(st.integers(-max(a.dim(), 1), max(a.dim(), 1) - 1))
    size = a.shape[dim] if a.dim() else 1
    index = torch.tensor(data.draw(st.lists(st.integers(-1, size), max_size=6)), dtype=torch.int64)
    check(lambda x, i: torch.index_select(x, dim, i), a, index, device=device)
    check(lambda x, i: call_out(torch.index_select, x, dim, i), a, index, device=device)
    gather_shape = list(a.shape)
    if a.dim():
        gather_shape[dim] = data.draw(st.integers(0, 3))
    gather_index = torch.randint(-1, size + 1, gather_shape, generator=torch.Generator().manual_seed(size))
    check(lambda x, i: torch.gather(x, dim, i), a, gather_index, device=device)
    check(lambda x, i: call_out(torch.gather, x, dim, i), a, gather_index, device=device)


@st.composite
def reduction_args(draw):
    a = draw(tensors())
    dims = draw(st.lists(st.integers(-max(a.dim(), 1), max(a.dim(), 1) - 1), max_size=2, unique=True)) if a.dim() else []
    return a, dims, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std", "sum_dtype", "sum_out", "mean_out",
                                  "amax_out"])
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
        "sum_out": lambda x: call_out(torch.sum, x, dims, keepdim=keepdim),
        "mean_out": lambda x: call_out(torch.mean, x, dims, keepdim=keepdim),
        "amax_out": lambda x: call_out(torch.amax, x, dims, keepdim=keepdim),
    }
    check(fns[name], a, device=device)


@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin", "argmax_full", "argmin_full", "argmax_out",
                                  "max_out", "max_full", "sum_full"])
@given(args=reduction_args(), device=DEVICES)
def test_reductions_with_one_dim(name, args, device):
    a, dims, keepdim = args
    dim = dims[0] if dims else 0
    fns = {
        "max": lambda x: tuple(torch.max(x, dim, keepdim=keepdim)),
        "min": lambda x: tuple(torch.min(x, dim, keepdim=keepdim)),
        "argmax": lambda x: torch.argmax(x, dim, keepdim=keepdim),
        "argmin": lambda x: torch.argmin(x, dim, keepdim=keepdim),
        "argmax_full": lambda x: torch.argmax(x, keepdim=keepdim),
        "argmin_full": lambda x: torch.argmin(x),
        "argmax_out": lambda x: call_out(torch.argmax, x, dim, keepdim=keepdim),
        "max_out": lambda x: tuple(torch.max(x, dim, keepdim=keepdim, out=(
            torch.empty(0, dtype=x.dtype, device=x.device), torch.empty(0, dtype=torch.long, device=x.device)))),
        "max_full": lambda x: torch.max(x),
        "sum_full": lambda x: torch.sum(x),
    }
    check(fns[name], a, device=device)


MATMUL_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int64, torch.bool]


@st.composite
def matmul_operands(draw, dims):
    """Tensors of one dtype with shapes spelled by `dims` ("bnk": batch x n x k, "": 0-dim), each contiguous,
    transposed or a strided slice."""
    sizes = {d: draw(st.integers(0, 6)) for d in "bnkm"}
    dtype = draw(st.sampled_from(MATMUL_DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    layouts = st.sampled_from(["contiguous", "transposed", "strided"])
    return [make(tuple(sizes[d] for d in spec), dtype, draw(layouts), seed + i) for i, spec in enumerate(dims)]


# (op, operand shapes, keyword arguments): mm/addmm/bmm/mv/addmv/dot in every form (functional, in-place, out=),
# and the matmul paths (2-D and batched @ 1-D reach mv, 1-D @ 2-D and batched @ 2-D reach mm).
LINALG_FORMS = [
    ("mm", ("nk", "km"), {}),
    ("addmm", ("nm", "nk", "km"), {"beta": 2, "alpha": -1}),
    ("addmm", ("m", "nk", "km"), {}),
    ("bmm", ("bnk", "bkm"), {}),
    ("mv", ("nk", "k"), {}),
    ("addmv", ("n", "nk", "k"), {"beta": -1, "alpha": 2}),
    ("addmv", ("", "nk", "k"), {}),
    ("dot", ("k", "k"), {}),
    ("matmul", ("nk", "k"), {}),
    ("matmul", ("bnk", "k"), {}),
    ("matmul", ("k", "km"), {}),
    ("matmul", ("bnk", "km"), {}),
    ("matmul", ("bnk", "bkm"), {}),
]


@pytest.mark.parametrize("op_name, dims, kwargs", LINALG_FORMS,
                         ids=[f"{name}-{'@'.join(d or '0d' for d in dims)}" for name, dims, _ in LINALG_FORMS])
@given(data=st.data(), device=DEVICES)
def test_linear_algebra(op_name, dims, kwargs, data, device):
    args = data.draw(matmul_operands(dims))
    for fn in variants(op_name, **kwargs):
        check(fn, *args, device=device)


@given(a=tensors(dtypes=FLOAT_DTYPES), device=DEVICES)
def test_softmax_family_with_backward(a, device):
    if a.dim() == 0:
        a = a.reshape(1)

    def forward_backward(fn):
        def run(x):
            x = copy_to(x.detach(), x.device).requires_grad_()
            y = fn(x)
            (y * torch.arange(y.numel(), dtype=y.dtype, device=y.device).reshape(y.shape)).sum().backward()
            return y.detach(), x.grad
        return run

    for fn in (lambda x: torch.softmax(x, -1), lambda x: torch.log_softmax(x, 0), torch.relu, torch.tanh,
               torch.sigmoid, F.gelu, F.silu, lambda x: torch.softmax(x, 0, dtype=torch.float32),
               lambda x: torch.log_softmax(x, -1, dtype=torch.float64)):
        check(forward_backward(fn), a, device=device)


@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(0, 9), st.sampled_from([1, 8, 16])),
       kv_length=st.integers(1, 9), dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
       causal=st.booleans(), masked=st.booleans(), device=DEVICES)
def test_scaled_dot_product_attention_with_backward(shape, kv_length, dtype, causal, masked, device):
    # Bit-exact: foo takes the kernel CPU takes for the same shapes (CPU's flash kernel, or the math composite).
    batch, heads, length, head_dim = shape
    q = make(shape, dtype, "contiguous", 0)
    k, v = (make((batch, heads, kv_length, head_dim), dtype, layout, seed) for seed, layout in ((1, "transposed"),
                                                                                                 (2, "contiguous")))
    mask = make((length, kv_length), torch.bool, "contiguous", 3) if masked else None

    def forward_backward(q, k, v, mask):
        q, k, v = (copy_to(t.detach(), t.device).requires_grad_() for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        out.sum().backward()
        return out.detach(), q.grad, k.grad, v.grad

    check(forward_backward, q, k, v, mask, device=device)


@pytest.mark.parametrize("loss_fn", [F.nll_loss, F.cross_entropy])
@given(batch=st.sampled_from([None, 0, 1, 2, 5]), classes=st.integers(1, 5), dtype=st.sampled_from(FLOAT_DTYPES),
       weighted=st.booleans(), ignore_index=st.sampled_from([-100, 0, 2]),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 1000), device=DEVICES)
def test_nll_loss_and_cross_entropy_forward_backward(loss_fn, batch, classes, dtype, weighted, ignore_index,
                                                      reduction, seed, device):
    """(N, C) and unbatched (C,) inputs, class weights, ignored targets, every reduction, forward and backward."""
    torch.manual_seed(seed)
    shape = (classes,) if batch is None else (batch, classes)
    logits = torch.randn(shape).to(dtype)
    target = torch.randint(0, classes, shape[:-1])
    weight = (torch.rand(classes) + 0.5).to(dtype) if weighted else None

    def run(x, t, w):
        x = x.detach().clone().requires_grad_()
        loss = loss_fn(x, t, weight=w, ignore_index=ignore_index, reduction=reduction)
        loss.sum().backward()
        return loss.detach(), x.grad

    check(run, logits, target, weight, device=device)


@st.composite
def tensor_lists(draw, count=3, dtypes=(torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64)):
    """`count` lists of 1 to 3 tensors; the i-th tensors of all lists share a shape and dtype (as parameters, grads
    and optimizer states do), one dtype for all or mixed dtypes, layouts vary."""
    lists = [[] for _ in range(count)]
    dtype, mixed = draw(st.sampled_from(dtypes)), draw(st.booleans())
    for _ in range(draw(st.integers(1, 3))):
        shape, dtype = draw(shapes), draw(st.sampled_from(dtypes)) if mixed else dtype
        for tensor_list in lists:
            tensor_list.append(draw(tensors(dtypes=[dtype], shape=shape)))
    return lists


def foreach_forms(name):
    """torch._foreach_NAME and, if it exists, torch._foreach_NAME_ applied to a copy of the first list (returned)."""
    forms = [getattr(torch, f"_foreach_{name}")] if hasattr(torch, f"_foreach_{name}") else []
    inplace_op = getattr(torch, f"_foreach_{name}_", None)

    def inplace(xs, *rest, **kwargs):
        xs = [copy_to(x, x.device) for x in xs]
        assert inplace_op(xs, *rest, **kwargs) is None
        return xs

    return forms + ([inplace] if inplace_op is not None else [])


def scalars_for(xs):
    return [0.5 * i - 1 for i in range(len(xs))]


# Every _foreach_* overload SGD, Adam/AdamW (foreach=True) and clip_grad_norm_/clip_grad_value_ call:
# name -> (op, call(op, xs, ys, zs, s) with tensor lists xs/ys/zs and s a 0-dim tensor on the same device).
FOREACH_FORMS = {
    "add-list_alpha": ("add", lambda op, x, y, z, s: op(x, y, alpha=-0.5)),
    "add-scalar": ("add", lambda op, x, y, z, s: op(x, 2)),
    "add-scalarlist": ("add", lambda op, x, y, z, s: op(x, scalars_for(x))),
    "add-tensor": ("add", lambda op, x, y, z, s: op(x, s, alpha=2)),
    "add-cpu_tensor": ("add", lambda op, x, y, z, s: op(x, torch.tensor(1.0), alpha=1.0)),
    "sub-scalar": ("sub", lambda op, x, y, z, s: op(x, 1)),
    "sub-list_alpha": ("sub", lambda op, x, y, z, s: op(x, y, alpha=3)),
    "mul-scalar": ("mul", lambda op, x, y, z, s: op(x, 0.9)),
    "mul-list": ("mul", lambda op, x, y, z, s: op(x, y)),
    "mul-scalarlist": ("mul", lambda op, x, y, z, s: op(x, scalars_for(x))),
    "mul-tensor": ("mul", lambda op, x, y, z, s: op(x, s)),
    "div-scalar": ("div", lambda op, x, y, z, s: op(x, -3)),
    "div-list": ("div", lambda op, x, y, z, s: op(x, y)),
    "div-scalarlist": ("div", lambda op, x, y, z, s: op(x, scalars_for(x))),
    "div-tensor": ("div", lambda op, x, y, z, s: op(x, s)),
    "maximum-list": ("maximum", lambda op, x, y, z, s: op(x, y)),
    "maximum-scalar": ("maximum", lambda op, x, y, z, s: op(x, 0.5)),
    "clamp_min-scalar": ("clamp_min", lambda op, x, y, z, s: op(x, -1)),
    "clamp_max-scalar": ("clamp_max", lambda op, x, y, z, s: op(x, 1.5)),
    "lerp-scalar": ("lerp", lambda op, x, y, z, s: op(x, y, 0.1)),
    "lerp-list": ("lerp", lambda op, x, y, z, s: op(x, y, z)),
    "addcmul-scalar": ("addcmul", lambda op, x, y, z, s: op(x, y, z, value=0.25)),
    "addcmul-scalarlist": ("addcmul", lambda op, x, y, z, s: op(x, y, z, scalars_for(x))),
    "addcmul-cpu_tensor": ("addcmul", lambda op, x, y, z, s: op(x, y, z, torch.tensor(scalars_for(x)))),
    "addcdiv-scalar": ("addcdiv", lambda op, x, y, z, s: op(x, y, z, value=-2)),
    "addcdiv-scalarlist": ("addcdiv", lambda op, x, y, z, s: op(x, y, z, scalars_for(x))),
    "addcdiv-cpu_tensor": ("addcdiv", lambda op, x, y, z, s: op(x, y, z, torch.tensor(scalars_for(x)))),
    "pow-scalar": ("pow", lambda op, x, y, z, s: op(x, 2)),
    "pow-list": ("pow", lambda op, x, y, z, s: op(x, y)),
    "pow-scalar_base": ("pow", lambda op, x, y, z, s: torch._foreach_pow(0.9, x)),
    "neg": ("neg", lambda op, x, y, z, s: op(x)),
    "sqrt": ("sqrt", lambda op, x, y, z, s: op(x)),
    "reciprocal": ("reciprocal", lambda op, x, y, z, s: op(x)),
    "norm-2": ("norm", lambda op, x, y, z, s: op(x)),
    "norm-1": ("norm", lambda op, x, y, z, s: op(x, 1)),
    "norm-inf": ("norm", lambda op, x, y, z, s: op(x, float("inf"))),
}


@pytest.mark.parametrize("form", FOREACH_FORMS)
@given(lists=tensor_lists(), s=tensors(dtypes=FLOAT_DTYPES, shape=()), device=DEVICES)
def test_foreach(form, lists, s, device):
    name, call = FOREACH_FORMS[form]
    for op in foreach_forms(name) if not form.endswith("scalar_base") else [None]:
        check(lambda x, y, z, t: call(op, x, y, z, t), *lists, s, device=device)


def test_native_ops_do_not_fall_back():
    torch_foo.reset_fallback_stats()
    a = torch.randn(4, 4, device="foo")
    b = torch.randn(4, 4, device="foo")
    v = torch.randn(4, device="foo")
    target = torch.tensor([0, 1, 2, 1], device="foo")
    cpu_scalar = torch.tensor(0.5)
    def out():
        return torch.empty(0, device="foo")

    for result in (a + b, a - b, a * b, a / b, a ** 2, -a, a.abs(), a.exp(), a.relu(), F.gelu(a), F.silu(a),
                   a.clamp(0, 1), torch.where(a > 0, a, b), a.sum(), a.mean(1), a.amax(0), a.max(1), a.argmax(),
                   a.var(0), a.std(), a @ b, torch.addmm(a, a, b), torch.bmm(a[None], b[None]), a[0].dot(b[0]),
                   torch.softmax(a, 1), torch.log_softmax(a, 1), a.sigmoid(), a.tanh(), a.sqrt(), a.rsqrt(),
                   a @ v, a[None].expand(3, 4, 4) @ v, torch.mv(a, v), torch.mv(a, v, out=out()),
                   torch.addmv(v, a, v), v.clone().addmv_(a, v, beta=2), torch.mm(a, b, out=out()),
                   torch.lerp(a, b, 0.5), torch.lerp(a, b, b),
                   torch.addcmul(a, a, b, value=2), torch.addcdiv(a, a, b), a.clamp(b, b + 1), a.clamp_min(0),
                   a.clamp_max(0), torch.div(a, b, rounding_mode="trunc"), torch.div(a, b, rounding_mode="floor"),
                   a.pow(3), torch.pow(2, a), a.argmin(1, keepdim=True), a * cpu_scalar, a.maximum(cpu_scalar),
                   a.eq(cpu_scalar), torch.sum(a, 1, out=out()), torch.where(a > 0, a, b, out=out()),
                   F.nll_loss(a, target, weight=v.abs(), ignore_index=1), torch._foreach_norm([a, b]),
                   torch._foreach_addcdiv([a], [a], [b], [0.5]), a.reciprocal(), a.index_select(0, target),
                   a.gather(1, target[:, None]), torch.index_select(a, 1, target, out=out())):
        del result
    a.fill_(1)
    a.fill_(b[0, 0])
    a.zero_()
    torch._foreach_lerp_([a, b], [b, a], 0.1)
    assert torch_foo.fallback_stats() == {}


def test_overlapping_output_rejected_like_cpu():
    check(lambda x: x.expand(3, 4).add_(1), torch.arange(4.0))


class ComputedStrides(torch.Tensor):
    """A subclass whose strides come from Python (sizes/strides policy "strides"): its TensorImpl's own layout record
    is not its layout. Its ops reach foo's kernels with the subclass itself once torch dispatch is disabled."""

    @staticmethod
    def __new__(cls, t, strides):
        r = torch.Tensor._make_subclass(cls, t, False, dispatch_sizes_strides_policy="strides")
        r.computed_strides = strides
        return r

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        aten = torch.ops.aten
        if func in (aten.sym_stride.default, aten.stride.default):
            return args[0].computed_strides
        if func in (aten.is_contiguous.default, aten.is_contiguous.memory_format, aten.is_strides_like_format.default,
                    aten.is_non_overlapping_and_dense.default):
            return False
        with torch._C._DisableTorchDispatch():
            return func(*args, **(kwargs or {}))


def test_kernels_see_the_layout_a_subclass_computes():
    cpu = torch.arange(6.0)
    foo = cpu.reshape(2, 3).to("foo")
    torch.add(foo, 1)  # the thread's alias cache now holds a (2, 3) contiguous alias of this memory
    computed = ComputedStrides(foo, (1, 2))  # same storage and record, computed layout (2, 3) with strides (1, 2)
    assert torch.equal(torch.add(computed, 1).cpu(), cpu.as_strided((2, 3), (1, 2)) + 1)
    assert torch.equal(torch.add(foo, 1).cpu(), cpu.reshape(2, 3) + 1)  # and the plain tensor still gets its own


def views_of(base):
    """Eight views of a 24-element tensor, each with its own layout; two bases give more views than a thread's alias
    cache holds (8), and several of them share a storage and an address."""
    grid = base.view(4, 6)
    return [base[:12], base[12:], grid, grid.t(), base[::2], base[1::2], base.view(6, 4)[1:], base.view(2, 12)[:, ::3]]


@given(steps=st.lists(st.tuples(st.sampled_from(["add_", "mul_out", "x + x", "sum"]), st.integers(0, 15)),
                      min_size=1, max_size=60))
def test_views_of_shared_storages_in_any_order(steps):
    """However the ops of a loop come, each kernel sees the layout of the tensor it is given: aliases of the same
    memory with other layouts, or cached for other tensors, are never lent for it."""
    bases = {device: [torch.arange(24.0, device=device) + 100 * k for k in range(2)] for device in ("cpu", "foo")}
    views = {device: [v for base in bases[device] for v in views_of(base)] for device in bases}
    for op, i in steps:
        results = {}
        for device, vs in views.items():
            x = vs[i]
            if op == "add_":
                results[device] = x.add_(1)
            elif op == "mul_out":  # into the same view of the other base
                results[device] = torch.mul(x, 2, out=vs[(i + 8) % 16])
            elif op == "x + x":
                results[device] = x + x
            else:
                results[device] = x.sum()
        assert torch.equal(results["foo"].cpu(), results["cpu"])
    for cpu_base, foo_base in zip(bases["cpu"], bases["foo"]):
        assert torch.equal(foo_base.cpu(), cpu_base)
