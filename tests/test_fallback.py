"""Ops without a native kernel run through the in-place CPU fallback: results, aliasing, in-place and out= semantics,
device placement, the fallback report and the TORCH_FOO_FALLBACK policy."""
import warnings

import pytest
import torch
import torch.nn.functional as F

import torch_foo
from helpers import assert_same, run_python


def both(fn, *cpu_args):
    """fn on CPU and on foo:1 (to catch device placement errors) with copies of the same inputs."""
    foo_args = [a.to("foo:1") if isinstance(a, torch.Tensor) else a for a in cpu_args]
    expected = fn(*cpu_args)
    actual = fn(*foo_args)
    assert_same(actual, expected, device="foo:1")
    return foo_args, cpu_args


FALLBACK_CASES = {
    "index": lambda x, i: x[i],
    "index_bool": lambda x, i: x[x > 0],
    "index_put": lambda x, i: x.index_put((i,), torch.ones(x.shape[1], device=x.device)),
    "scatter": lambda x, i: torch.zeros(5, 4, device=x.device).scatter(0, i[:4].reshape(1, 4) % 5, x[:1]),
    "sort": lambda x, i: tuple(torch.sort(x, dim=1)),
    "topk": lambda x, i: tuple(torch.topk(x, 2, dim=1)),
    "cumsum": lambda x, i: torch.cumsum(x, 0),
    "embedding": lambda x, i: F.embedding(i, x),
    "conv2d": lambda x, i: F.conv2d(x.reshape(1, 1, 6, 4), torch.ones(2, 1, 3, 3, device=x.device)),
    "gather": lambda x, i: torch.gather(x, 0, (i % 6).reshape(-1, 1).expand(-1, 4)),
    "unique": lambda x, i: torch.unique(i),
    "nonzero": lambda x, i: torch.nonzero(x > 0),
    "arange": lambda x, i: torch.arange(5, device=x.device),
    "linspace": lambda x, i: torch.linspace(0, 1, 7, device=x.device),
}


@pytest.mark.parametrize("name", sorted(FALLBACK_CASES))
def test_fallback_ops_match_cpu(name):
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    i = torch.tensor([0, 2, 5, 1, 3])
    both(FALLBACK_CASES[name], x, i)


def test_in_place_and_out_forms_through_fallback():
    x = torch.randn(5, 3)
    (fx,), _ = both(lambda t: t, x)
    # in place on a view writes through to the base, as on CPU
    cpu = x.clone()
    foo = cpu.to("foo")
    cpu[1:].cumsum_(0)
    foo[1:].cumsum_(0)
    assert torch.equal(foo.cpu(), cpu)
    # out= with a wrongly sized out is resized, and the out tensor itself is returned
    out_cpu = torch.empty(0)
    out_foo = torch.empty(0, device="foo")
    returned = torch.cumsum(x.to("foo"), 1, out=out_foo)
    torch.cumsum(x, 1, out=out_cpu)
    assert returned is out_foo
    assert out_foo.shape == out_cpu.shape and torch.equal(out_foo.cpu(), out_cpu)
    # out= given a non-contiguous view
    base = torch.zeros(3, 10, device="foo")
    torch.cumsum(x.t().to("foo"), 1, out=base[:, ::2])
    ref = torch.zeros(3, 10)
    torch.cumsum(x.t(), 1, out=ref[:, ::2])
    assert torch.equal(base.cpu(), ref)


def test_fallback_view_results_alias_their_input():
    x = torch.arange(12.0, device="foo").reshape(3, 4)
    windows = x.unfold(1, 2, 1)  # a view op with a CPU kernel
    assert windows.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    x.add_(100)
    assert torch.equal(windows.cpu(), (torch.arange(12.0).reshape(3, 4) + 100).unfold(1, 2, 1))


def test_fallback_report():
    torch_foo.reset_fallback_stats()
    x = torch.randn(8, device="foo")
    torch.cumsum(x, 0)
    torch.cumsum(x, 0)
    torch.sort(x)
    stats = torch_foo.fallback_stats()
    assert stats["aten::cumsum"] == 2  # a structured op without foo kernels runs whole (not as cumsum.out)
    assert any(name.startswith("aten::sort") for name in stats)
    torch_foo.reset_fallback_stats()
    assert torch_foo.fallback_stats() == {}


def test_fallback_policy_error_and_warn():
    x = torch.randn(8, device="foo")
    previous = torch_foo.fallback_policy()
    try:
        torch_foo.set_fallback_policy("error")
        with pytest.raises(NotImplementedError, match="cumsum"):
            torch.cumsum(x, 0)
        (x + 1).sum()  # native ops are unaffected
        torch_foo.set_fallback_policy("warn")
        with pytest.warns(UserWarning, match="cumsum"):
            torch.cumsum(x, 0)
        with pytest.raises(ValueError, match="allow, warn or error"):
            torch_foo.set_fallback_policy("sometimes")
    finally:
        torch_foo.set_fallback_policy(previous)


def test_fallback_policy_from_environment():
    result = run_python(
        """
        import warnings, torch, torch_foo
        x = torch.randn(4, device="foo")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cumsum(x, 0); torch.cumsum(x, 0)
        print(torch_foo.fallback_policy(), sum("cumsum" in str(w.message) for w in caught))
        """,
        env={"TORCH_FOO_FALLBACK": "warn"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["warn", "1"]


def test_fallback_rejects_mixed_devices():
    with pytest.raises(RuntimeError, match="same device"):
        torch.cumsum(torch.ones(3, device="foo:0"), 0, out=torch.empty(3, device="foo:1"))


@pytest.mark.parametrize("write_into_cpu", [
    lambda a, out: torch.add(a, a, out=out),  # native out=
    lambda a, out: torch.cumsum(a, 0, out=out),  # fallback out=
    lambda a, out: torch.max(a, 0, out=(out, torch.empty(0, dtype=torch.long, device="foo:1"))),  # two outputs
    lambda a, out: out.add_(a.sum()),  # native in-place on a CPU 0-dim tensor
], ids=["native_out", "fallback_out", "two_outs", "native_inplace"])
def test_cpu_out_with_foo_inputs_is_rejected_like_cuda(write_into_cpu):
    """A CPU 0-dim tensor may be an input of a foo op (a scalar), never its output: written, it would be resized into
    device memory behind its CPU device (and shared with a forked child). CUDA refuses it with this message."""
    a = torch.arange(3.0, device="foo:1")
    out = torch.tensor(5.0)
    with pytest.raises(RuntimeError, match=r"Expected out tensor to have device foo:1, but got cpu instead"):
        write_into_cpu(a, out)
    assert out.shape == () and out.item() == 5.0


def test_cpu_only_custom_op_keeps_no_cpu_tensors_in_device_memory():
    """A custom operator with only a CPU kernel (here in Python) runs on host copies: what it keeps from its inputs and
    what it allocates for later are real host memory, not CPU views of device blocks that later hold other tensors."""
    kept = []

    @torch.library.custom_op("foo_reliability_test::keep_and_add", mutates_args=(), device_types="cpu")
    def keep_and_add(x: torch.Tensor) -> torch.Tensor:
        kept.append(x)  # an input kept past the call
        kept.append(torch.full_like(x, 2.0))  # a tensor created for later
        return x + kept[-1]

    x_cpu = torch.arange(4096.0)
    x = x_cpu.to("foo")
    torch.foo.synchronize()
    allocated = torch.foo.memory_allocated()
    assert_same(keep_and_add(x), keep_and_add(x_cpu))
    assert torch.foo.memory_allocated() == allocated  # the result is gone; nothing the op kept is device memory
    del x
    reuser = torch.full((4096,), -1.0, device="foo")  # takes the freed block
    assert torch.equal(kept[0], x_cpu) and torch.equal(kept[1], torch.full((4096,), 2.0))
    assert torch.equal(reuser.cpu(), torch.full((4096,), -1.0))


def test_large_fallback_op_is_in_place():
    """The fallback must not copy its inputs: device memory grows only by the output."""
    x = torch.randn(1 << 20, device="foo")
    torch.foo.synchronize()
    torch.foo.reset_peak_memory_stats()
    before = torch.foo.memory_allocated()
    y = torch.cumsum(x, 0)
    assert torch.foo.max_memory_allocated() - before <= y.nbytes + 4096


# ---------------------------------------------------------------------------------------------------------------------
# Ops with no native kernel, form by form, against CPU on the same inputs. Everything runs on foo:1 while foo:0 is the
# current device, so a result allocated on the current device instead of its inputs' shows up. Each test also checks
# that the op really went through the fallback (so it keeps testing the fallback if a native kernel is added later:
# move the case to test_ops.py then) and the aliasing rules: in place returns self with the same data, out= returns
# out, an in-place op on a view writes through to its base, an out= view keeps its storage.

FOO1 = torch.device("foo:1")
FLOATS = [torch.float32, torch.float64]
ALL_DTYPES = FLOATS + [torch.int64, torch.bool]
BASE_SHAPE = (8, 6)


def tensors_in(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v)]
    return []


def on_foo1(value):
    """A copy of value on foo:1 (tensors nested in tuples and lists too; leaves stay leaves)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(FOO1).requires_grad_(value.requires_grad)
    if isinstance(value, (tuple, list)):
        return type(value)(on_foo1(v) for v in value)
    return value


def assert_same_on_foo1(actual, expected):
    """assert_same on exactly foo:1, plus: every tensor has the CPU tensor's strides."""
    assert_same(actual, expected, device=FOO1)
    for a, e in zip(tensors_in(actual), tensors_in(expected), strict=True):
        assert a.stride() == e.stride(), (a.stride(), e.stride())


def op_names(stats):
    """{"scatter", ...} from {"aten::scatter.src_out": n, "aten::scatter_.src": n, ...} (in-place variants of
    structured ops run whole through the fallback)."""
    return {name.split("::", 1)[-1].split(".", 1)[0].rstrip("_") for name in stats}


class FellBack:
    """Context manager: each named aten op (overload-free, e.g. "scatter" for aten::scatter.src_out) ran through the
    CPU fallback inside the block."""

    def __init__(self, *ops):
        self.ops = ops

    def __enter__(self):
        self.before = torch_foo.fallback_stats()

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            after = torch_foo.fallback_stats()
            ran = op_names({name: n for name, n in after.items() if n > self.before.get(name, 0)})
            missing = {op.rstrip("_") for op in self.ops} - ran
            assert not missing, f"{sorted(missing)} did not run through the fallback (ran: {sorted(ran)})"


def compare(fn, *cpu_args, fallback, cpu_error=False):
    """fn on CPU and on foo:1 copies of the same inputs: the same result and the same effect on every input (in-place
    and out= writes are compared through the arguments, which hold the bases of any views fn takes), with each op in
    `fallback` counted by the fallback report. With cpu_error, the CPU run must raise and foo must raise alike."""
    foo_args = on_foo1(cpu_args)
    if cpu_error:
        with pytest.raises(Exception) as cpu_raised:
            fn(*cpu_args)
        with pytest.raises(cpu_raised.type), torch.foo.device(0):
            fn(*foo_args)
        return None, foo_args
    expected = fn(*cpu_args)
    with FellBack(*fallback), torch.foo.device(0):  # foo:1 tensors while foo:0 is current
        actual = fn(*foo_args)
        assert torch.foo.current_device() == 0  # the fallback restores the current device
    assert_same_on_foo1(actual, expected)
    assert_same_on_foo1(foo_args, cpu_args)
    return actual, foo_args


def make(shape, dtype, seed=0):
    """Deterministic values with many ties (for stable sort, unique, topk ties)."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    return (torch.randint(-6, 7, shape, generator=g) / (2 if dtype.is_floating_point else 1)).to(dtype)


def permutation_rows(shape, rows, seed=1):
    """An index of `rows` rows along dim 0 of a tensor of `shape`, without repeats within a column."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g).argsort(0)[:rows]


def random_rows(shape, rows, seed=2):
    """An index of `rows` rows along dim 0 of a tensor of `shape`, with repeats."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, shape[0], (rows, shape[1]), generator=g)


def mask_like(shape, seed=3):
    return make(shape, torch.bool, seed)


# Views of the BASE_SHAPE base an op is applied to. "expanded" overlaps itself: only legal as a target for ops that
# tolerate it on CPU (masked_fill_, index_put_); the others are checked to refuse it in test_fallback_refuses_*.
VIEWS = {
    "contiguous": lambda t: t,
    "transposed": lambda t: t.t(),
    "strided": lambda t: t[::2, 1::2],
    "expanded": lambda t: t[2:3].expand(5, BASE_SHAPE[1]),
}


def value_of(dtype):
    return True if dtype == torch.bool else 2


class Case:
    """An op without a native kernel in up to three forms, each f(target, *args) (out=: f(target, *args, out=out)).
    args(shape, dtype) builds the other arguments (on CPU) for a target of that shape."""

    def __init__(self, fallback, args, functional=None, inplace=None, out=None, dtypes=ALL_DTYPES,
                 inplace_views=("contiguous", "transposed", "strided"), cpu_errors=()):
        self.fallback, self.args = fallback, args
        self.forms = {"functional": functional, "inplace": inplace, "out": out}
        self.dtypes, self.inplace_views, self.cpu_errors = dtypes, inplace_views, set(cpu_errors)


CASES = {
    "scatter": Case(
        ("scatter",), lambda s, d: (permutation_rows(s, 3), make((3, s[1]), d, 4)),
        functional=lambda t, i, src: t.scatter(0, i, src),
        inplace=lambda t, i, src: t.scatter_(0, i, src),
        out=lambda t, i, src, out: torch.scatter(t, 0, i, src, out=out)),
    "scatter_value": Case(
        ("scatter",), lambda s, d: (permutation_rows(s, 2), value_of(d)),
        functional=lambda t, i, v: t.scatter(0, i, v),
        inplace=lambda t, i, v: t.scatter_(0, i, v),
        out=lambda t, i, v, out: torch.scatter(t, 0, i, v, out=out)),
    "scatter_add": Case(
        ("scatter_add",), lambda s, d: (random_rows(s, 2 * s[0]), make((2 * s[0], s[1]), d, 4)),
        functional=lambda t, i, src: t.scatter_add(0, i, src),
        inplace=lambda t, i, src: t.scatter_add_(0, i, src),
        out=lambda t, i, src, out: torch.scatter_add(t, 0, i, src, out=out)),
    "index_put_accumulate": Case(
        ("_index_put_impl_",), lambda s, d: (torch.tensor([0, s[0] - 1, 0, 1]), make((4, s[1]), d, 4)),
        functional=lambda t, i, v: t.index_put((i,), v, accumulate=True),
        inplace=lambda t, i, v: t.index_put_((i,), v, accumulate=True),
        inplace_views=("contiguous", "transposed", "strided", "expanded")),
    "index_put_mask": Case(
        ("_index_put_impl_",), lambda s, d: (mask_like(s), torch.tensor(value_of(d), dtype=d)),
        functional=lambda t, m, v: t.index_put((m,), v),
        inplace=lambda t, m, v: t.index_put_((m,), v)),
    # index_select and gather have native kernels now; the matrix of forms and views still checks them.
    "index_select": Case(
        (), lambda s, d: (torch.tensor([s[0] - 1, 0, 0, 1]),),
        functional=lambda t, i: torch.index_select(t, 0, i),
        out=lambda t, i, out: torch.index_select(t, 0, i, out=out)),
    "masked_fill": Case(
        ("masked_fill_",), lambda s, d: (mask_like(s), value_of(d)),
        functional=lambda t, m, v: t.masked_fill(m, v),
        inplace=lambda t, m, v: t.masked_fill_(m, v),
        inplace_views=("contiguous", "transposed", "strided", "expanded")),
    "masked_fill_tensor": Case(  # a 0-d foo tensor as the value
        ("masked_fill_",), lambda s, d: (mask_like(s), torch.tensor(value_of(d), dtype=d)),
        functional=lambda t, m, v: t.masked_fill(m, v),
        inplace=lambda t, m, v: t.masked_fill_(m, v)),
    "gather": Case(
        (), lambda s, d: (random_rows(s, 5),),
        functional=lambda t, i: torch.gather(t, 0, i),
        out=lambda t, i, out: torch.gather(t, 0, i, out=out)),
    "sort_stable_descending": Case(
        ("sort",), lambda s, d: (),
        functional=lambda t: tuple(torch.sort(t, dim=1, stable=True, descending=True)),
        out=lambda t, out: torch.sort(t, dim=1, stable=True, descending=True, out=out)),
    "sort_dim0": Case(
        ("sort",), lambda s, d: (),
        functional=lambda t: tuple(torch.sort(t, dim=0)),
        out=lambda t, out: torch.sort(t, dim=0, out=out)),
    "topk": Case(
        ("topk",), lambda s, d: (),
        functional=lambda t: tuple(torch.topk(t, 2, dim=1)),
        out=lambda t, out: torch.topk(t, 2, dim=1, out=out), dtypes=FLOATS + [torch.int64]),
    "topk_smallest_dim0": Case(
        ("topk",), lambda s, d: (),
        functional=lambda t: tuple(torch.topk(t, 3, dim=0, largest=False)),
        out=lambda t, out: torch.topk(t, 3, dim=0, largest=False, out=out), dtypes=FLOATS + [torch.int64]),
    "cumsum": Case(
        ("cumsum",), lambda s, d: (),
        functional=lambda t: torch.cumsum(t, 0),
        inplace=lambda t: t.cumsum_(1),
        out=lambda t, out: torch.cumsum(t, 1, out=out),
        cpu_errors={("inplace", torch.bool)}),
    "cumprod": Case(
        ("cumprod",), lambda s, d: (),
        functional=lambda t: torch.cumprod(t, 1),
        inplace=lambda t: t.cumprod_(0),
        out=lambda t, out: torch.cumprod(t, 0, out=out),
        cpu_errors={("inplace", torch.bool)}),
    "nonzero": Case(
        ("nonzero",), lambda s, d: (),
        functional=lambda t: torch.nonzero(t),
        out=lambda t, out: torch.nonzero(t, out=out)),
    "nonzero_as_tuple": Case(("nonzero",), lambda s, d: (), functional=lambda t: torch.nonzero(t, as_tuple=True)),
    "where_1_arg": Case(("nonzero",), lambda s, d: (), functional=lambda t: torch.where(t)),
    "unique": Case(
        ("_unique2",), lambda s, d: (),
        functional=lambda t: torch.unique(t, sorted=True, return_inverse=True, return_counts=True)),
    "unique_dim": Case(
        ("unique_dim",), lambda s, d: (),
        functional=lambda t: torch.unique(t, dim=1, return_inverse=True, return_counts=True)),
}


def out_tensors_like(result, kind):
    """(bases, outs) for result (a tensor or tuple): "resized": empty, so the op resizes it; "strided": every other
    column of a zero base; "transposed": the transpose of a zero base."""
    bases, outs = [], []
    for r in result if isinstance(result, tuple) else (result,):
        if kind == "resized":
            base = out = torch.empty(0, dtype=r.dtype, device=r.device)
        elif kind == "strided":
            base = torch.zeros(*r.shape[:-1], 2 * r.shape[-1], dtype=r.dtype, device=r.device)
            out = base[..., ::2]
        else:
            base = torch.zeros(r.shape[::-1], dtype=r.dtype, device=r.device)
            out = base.t()
        bases.append(base)
        outs.append(out)
    return bases, outs


def form_fn(case, form, view):
    """fn(base, *args) running the case's form on view(base); the alias checks run on both devices."""
    op = case.forms[form.split("_")[0]]
    if form == "functional":
        return lambda base, *args: op(VIEWS[view](base), *args)
    if form == "inplace":
        def inplace(base, *args):
            target = VIEWS[view](base)
            data = target.data_ptr()
            result = op(target, *args)
            assert result is target, "in place did not return its target"
            assert result.data_ptr() == data, "in place moved its target's data"
            return result

        return inplace
    kind = form.split("_", 1)[1]

    def with_out(base, *args):
        target = VIEWS[view](base)
        reference = op(target, *args, out=None)  # gives the outs' shapes and dtypes
        bases, outs = out_tensors_like(tuple(reference) if isinstance(reference, tuple) else reference, kind)
        data = [o.data_ptr() for o in outs]
        result = op(target, *args, out=tuple(outs) if len(outs) > 1 else outs[0])
        returned = tuple(result) if len(outs) > 1 else (result,)
        assert all(r is o for r, o in zip(returned, outs, strict=True)), "out= did not return out"
        if kind != "resized":  # a correctly sized out keeps its memory: the base sees the result
            assert [o.data_ptr() for o in outs] == data, "out= moved a correctly sized out's data"
            assert all(o._base is b for o, b in zip(outs, bases))
        return bases

    return with_out


FORMS = ["functional", "inplace", "out_resized", "out_strided", "out_transposed"]


def fallback_params():
    for name, case in sorted(CASES.items()):
        for form in FORMS:
            if case.forms[form.split("_")[0]] is None:
                continue
            views = case.inplace_views if form == "inplace" else VIEWS
            for view in views:
                for dtype in case.dtypes:
                    yield pytest.param(name, form, view, dtype, id=f"{name}-{form}-{view}-{str(dtype)[6:]}")


@pytest.mark.filterwarnings("ignore:Use of .* on expanded tensors is deprecated")
@pytest.mark.parametrize("name,form,view,dtype", list(fallback_params()))
def test_fallback_op_forms_match_cpu(name, form, view, dtype):
    case = CASES[name]
    base = make(BASE_SHAPE, dtype)
    args = case.args(VIEWS[view](base).shape, dtype)
    cpu_error = (form.split("_")[0], dtype) in case.cpu_errors
    compare(form_fn(case, form, view), base, *args, fallback=case.fallback, cpu_error=cpu_error)


EDGE_CASES = {  # 0-d and 0-size inputs: name -> (fn, args, fallback op)
    "cumsum_0d": (lambda t: torch.cumsum(t, 0), (torch.tensor(2.5),), "cumsum"),
    "cumsum__0d": (lambda t: t.cumsum_(0), (torch.tensor(2.5),), "cumsum"),
    "cumprod_0size": (lambda t: torch.cumprod(t, 0), (torch.empty(0, 3),), "cumprod"),
    "cumsum_out_0size": (lambda t: torch.cumsum(t, 0, out=torch.empty(5, device=t.device)), (torch.empty(0, 3),),
                         "cumsum"),
    "sort_0size": (lambda t: tuple(torch.sort(t, dim=0)), (torch.empty(0, 3),), "sort"),
    "sort_0d": (lambda t: tuple(torch.sort(t)), (torch.tensor(1.5),), "sort"),
    "topk_k0": (lambda t: tuple(torch.topk(t, 0)), (make((4, 3), torch.float32),), "topk"),
    "topk_0d": (lambda t: tuple(torch.topk(t, 1)), (torch.tensor(1.5),), "topk"),
    "nonzero_0size": (lambda t: torch.nonzero(t), (torch.empty(0, 3),), "nonzero"),
    "nonzero_0d": (lambda t: torch.nonzero(t), (torch.tensor(2.0),), "nonzero"),
    "nonzero_none": (lambda t: torch.nonzero(t), (torch.zeros(3, 4),), "nonzero"),
    "where_0d": (lambda t: torch.where(t), (torch.tensor(True),), "nonzero"),
    "unique_0size": (lambda t: torch.unique(t, return_inverse=True, return_counts=True), (torch.empty(0, 3),),
                     "_unique2"),
    "unique_0d": (lambda t: torch.unique(t, return_inverse=True, return_counts=True), (torch.tensor(3),), "_unique2"),
    "index_select_empty_index": (lambda t, i: torch.index_select(t, 0, i),
                                 (make((4, 3), torch.float32), torch.empty(0, dtype=torch.long)), None),
    "index_select_0d": (lambda t, i: torch.index_select(t, 0, i), (torch.tensor(2.5), torch.tensor([0])), None),
    "gather_0d": (lambda t, i: torch.gather(t, 0, i), (torch.tensor(2.5), torch.tensor(0)), None),
    "scatter__0d": (lambda t, i: t.scatter_(0, i, 7.0), (torch.tensor(2.5), torch.tensor(0)), "scatter"),
    "scatter__empty_index": (lambda t, i, s: t.scatter_(0, i, s), (make((4, 3), torch.float32),
                             torch.empty(0, 3, dtype=torch.long), torch.empty(0, 3)), "scatter"),
    "masked_fill__0d": (lambda t, m: t.masked_fill_(m, 1.0), (torch.tensor(2.5), torch.tensor(True)), "masked_fill_"),
    "masked_fill__0size": (lambda t, m: t.masked_fill_(m, 1.0),
                           (torch.empty(0, 3), torch.empty(0, 3, dtype=torch.bool)), "masked_fill_"),
    "index_put__empty": (lambda t, i, v: t.index_put_((i,), v, accumulate=True),
                         (make((4, 3), torch.float32), torch.empty(0, dtype=torch.long), torch.empty(0, 3)),
                         "_index_put_impl_"),
    "embedding_empty": (lambda w, i: F.embedding(i, w),
                        (make((5, 3), torch.float32), torch.empty(0, 2, dtype=torch.long)), None),
}


@pytest.mark.filterwarnings("ignore:An output with one or more elements was resized")
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_fallback_edge_shapes_match_cpu(name):
    fn, args, op = EDGE_CASES[name]  # op None: a native kernel (index_select, gather) on the same edge shapes
    compare(fn, *args, fallback=(op,) if op else ())


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("weight_view", ["contiguous", "transposed"])
@pytest.mark.parametrize("indices_view", ["contiguous", "expanded"])
@pytest.mark.parametrize("options", [{}, {"padding_idx": 2}, {"scale_grad_by_freq": True}], ids=str)
def test_embedding_and_backward_match_cpu(dtype, weight_view, indices_view, options):
    weight = make((10, 4), dtype) if weight_view == "contiguous" else make((4, 10), dtype)
    indices = torch.tensor([[1, 2, 2, 9], [9, 0, 2, 2], [3, 3, 3, 1]])
    grad_out = make((3 if indices_view == "contiguous" else 5, 4, 4), dtype, seed=7)

    def fn(w, i, g):
        w.requires_grad_()
        i = i if indices_view == "contiguous" else i[1:2].expand(5, 4)
        out = F.embedding(i, w if weight_view == "contiguous" else w.t(), **options)
        out.backward(g)
        return out.detach(), w.grad

    (_, grad), _ = compare(fn, weight, indices, grad_out, fallback=("embedding_dense_backward",))
    if "padding_idx" in options:  # the padding row gets no gradient
        grad = grad.cpu() if weight_view == "contiguous" else grad.cpu().t()
        assert not grad[2].any() and grad.any()


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed"])
@pytest.mark.parametrize("options", [{}, {"stride": 2, "padding": 1}, {"groups": 2, "dilation": 2, "padding": 2}],
                         ids=str)
def test_conv2d_forward_and_backward_match_cpu(dtype, layout, options):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 7, 6, generator=g, dtype=dtype)
    weight = torch.randn(6, 4 // options.get("groups", 1), 3, 3, generator=g, dtype=dtype)
    bias = torch.randn(6, generator=g, dtype=dtype)
    if layout == "transposed":  # the input is x.transpose(2, 3) of this base
        x = x.transpose(2, 3).contiguous()

    def fn(x, w, b):
        for t in (x, w, b):
            t.requires_grad_()
        inp = {"contiguous": x, "channels_last": x.to(memory_format=torch.channels_last),
               "transposed": x.transpose(2, 3)}[layout]
        out = F.conv2d(inp, w, b, **options)
        out.backward(torch.ones_like(out).cumsum(-1))
        return out.detach(), x.grad, w.grad, b.grad

    compare(fn, x, weight, bias, fallback=("convolution", "convolution_backward"))


@pytest.mark.parametrize("name", ["scatter_", "scatter_add_", "cumsum_", "cumprod_"])
def test_fallback_refuses_in_place_on_overlapping_views(name):
    """As on CPU, an in-place op whose target has several elements at one address raises, leaving the base as it
    was."""
    op = {
        "scatter_": lambda t: t.scatter_(0, torch.zeros(1, 4, dtype=torch.long, device=t.device), 1.0),
        "scatter_add_": lambda t: t.scatter_add_(0, torch.zeros(1, 4, dtype=torch.long, device=t.device),
                                                 torch.ones(1, 4, device=t.device)),
        "cumsum_": lambda t: t.cumsum_(0),
        "cumprod_": lambda t: t.cumprod_(0),
    }[name]
    base = torch.arange(8.0).reshape(2, 4)
    foo = base.to(FOO1)
    with pytest.raises(RuntimeError, match="single memory location") as cpu:
        op(base[:1].expand(3, 4))
    with pytest.raises(RuntimeError, match="single memory location"):
        op(foo[:1].expand(3, 4))
    assert torch.equal(foo.cpu(), base), cpu


MIXED_DEVICE_CASES = {
    "scatter_index_foo0": lambda x: x.scatter_(0, torch.zeros(1, 3, dtype=torch.long, device="foo:0"), 1.0),
    "scatter_src_cpu": lambda x: x.scatter_(0, torch.zeros(1, 3, dtype=torch.long, device=FOO1), torch.ones(1, 3)),
    "gather_index_cpu": lambda x: torch.gather(x, 0, torch.zeros(1, 3, dtype=torch.long)),
    "masked_fill_mask_foo0": lambda x: x.masked_fill_(torch.ones(4, 3, dtype=torch.bool, device="foo:0"), 1.0),
    "index_put_values_cpu": lambda x: x.index_put_((torch.tensor([0, 1], device=FOO1),), torch.ones(3),
                                                   accumulate=True),
    "index_put_index_foo0": lambda x: x.index_put_((torch.tensor([0, 1], device="foo:0"),), torch.ones(3, device=FOO1)),
    "index_select_out_foo0": lambda x: torch.index_select(x, 0, torch.tensor([0], device=FOO1),
                                                          out=torch.empty(0, device="foo:0")),
    "sort_out_foo0": lambda x: torch.sort(x, out=(torch.empty(0, device="foo:0"),
                                                  torch.empty(0, dtype=torch.long, device="foo:0"))),
    "topk_out_cpu": lambda x: torch.topk(x, 2, out=(torch.empty(0), torch.empty(0, dtype=torch.long))),
    "cumprod_out_cpu": lambda x: torch.cumprod(x, 0, out=torch.empty(0)),
    "embedding_indices_foo0": lambda x: F.embedding(torch.tensor([0], device="foo:0"), x),
    "conv2d_weight_foo0": lambda x: F.conv2d(x.reshape(1, 1, 4, 3), torch.ones(1, 1, 2, 2, device="foo:0")),
    "conv2d_weight_cpu": lambda x: F.conv2d(x.reshape(1, 1, 4, 3), torch.ones(1, 1, 2, 2)),
}


@pytest.mark.parametrize("name", sorted(MIXED_DEVICE_CASES))
def test_fallback_rejects_tensors_of_two_devices(name):
    x = torch.randn(4, 3)
    foo = x.to(FOO1)
    with pytest.raises(RuntimeError, match="same device"):
        MIXED_DEVICE_CASES[name](foo)
    assert torch.equal(foo.cpu(), x)  # nothing was written


@pytest.mark.parametrize("name", ["index_put_cpu_indices", "index_put_0d_cpu_value", "masked_fill_0d_cpu_value"])
def test_fallback_accepts_cpu_indices_and_0d_cpu_values(name):
    """As on CUDA, index_put_ takes CPU indices, and a 0-d CPU tensor is a scalar operand, with device self."""
    index, value, mask = torch.tensor([0, 3, 0]), torch.tensor(9.0), mask_like((4, 3))  # stay on CPU (closures)
    fn = {
        "index_put_cpu_indices": lambda t, v: t.index_put_((index,), v, accumulate=True),
        "index_put_0d_cpu_value": lambda t, m: t.index_put_((m,), value),
        "masked_fill_0d_cpu_value": lambda t, m: t.masked_fill_(m, value),
    }[name]
    other = torch.ones(3, 3) if name == "index_put_cpu_indices" else mask
    fallback = "masked_fill_" if name.startswith("masked_fill") else "_index_put_impl_"
    compare(fn, make((4, 3), torch.float32), other, fallback=(fallback,))


@pytest.mark.parametrize("current,device", [(0, 1), (1, 0)])
def test_fallback_runs_on_its_tensors_device_not_the_current_one(current, device):
    x = make(BASE_SHAPE, torch.float32)
    foo = x.to(f"foo:{device}")
    with torch.foo.device(current):
        values, indices = torch.sort(foo, dim=1, stable=True)
        summed = torch.cumsum(foo, 0)
        out = torch.empty(0, device=f"foo:{device}")
        torch.index_select(foo, 0, torch.tensor([1, 0], device=foo.device), out=out)
        assert torch.foo.current_device() == current
    expected_values, expected_indices = torch.sort(x, dim=1, stable=True)
    for got, expected in [(values, expected_values), (indices, expected_indices), (summed, torch.cumsum(x, 0)),
                          (out, x[[1, 0]])]:
        assert got.device == torch.device(f"foo:{device}")
        assert_same(got, expected)


def test_in_place_fallback_ops_on_views_under_autograd():
    """In-place fallback ops on views of an autograd graph's tensor: same values, gradients and version counter as on
    CPU (autograd's view and in-place tracking sits above the backend and must see the same aliasing)."""

    def fn(a):
        a.requires_grad_()
        y = a * 2
        y[1:].cumsum_(0)
        y.t()[::2].masked_fill_(torch.ones(3, 6, dtype=torch.bool, device=a.device).tril(), 0.5)
        y[::2, 1:].scatter_(0, torch.tensor([[0, 1, 2, 1, 0]], device=a.device), torch.ones(1, 5, dtype=a.dtype,
                                                                                            device=a.device))
        z = y.clone()
        z[1:].cumprod_(0)
        (z * z).sum().backward()
        return y.detach(), z.detach(), a.grad, y._version

    compare(fn, make((6, 6), torch.float64) + 0.25, fallback=("cumsum", "masked_fill_", "scatter", "cumprod"))


def test_in_place_fallback_op_is_seen_by_autograd():
    """A fallback op modifying a tensor autograd saved bumps its version: backward refuses, as on CPU."""
    a = torch.randn(4, 3, device=FOO1, requires_grad=True)
    y = a.sigmoid()  # saves its output
    y.cumsum_(0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("name", ["out_is_input", "out_is_other_half_of_base", "operand_from_same_base",
                                  "out_view_grows_beyond_its_storage"])
def test_fallback_aliasing_between_operands(name):
    """Operands and outs sharing one storage (the kernel sees aliases sharing one alias storage) behave as on CPU."""
    fn = {
        "out_is_input": lambda t: torch.cumsum(t, 0, out=t),
        "out_is_other_half_of_base": lambda b: torch.cumsum(b[:, :3], 1, out=b[:, 3:]),
        "operand_from_same_base": lambda b: b[:4].scatter_add_(0, torch.tensor([[0, 1, 1], [3, 3, 0]], device=b.device),
                                                               b[4:6]),
        # the base's storage holds 12 elements, the out needs 20: the shared storage is reallocated
        "out_view_grows_beyond_its_storage": lambda b: (
            torch.cumsum(torch.ones(5, 4, dtype=b.dtype, device=b.device), 0, out=b[:2]), b.untyped_storage().nbytes()),
    }[name]
    fallback = "scatter_add" if name == "operand_from_same_base" else "cumsum"
    shape = {"operand_from_same_base": (8, 3), "out_view_grows_beyond_its_storage": (3, 4)}.get(name, (8, 6))
    base = make(shape, torch.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "An output with one or more elements was resized")
        compare(fn, base, fallback=(fallback,))
