"""Python side of the custom operators torch.ops.foo.mymuladd / mymul / myadd_out: fake kernels (for FakeTensor and
torch.compile) and autograd formulas. The C++ kernels for CPU and foo live in csrc/kernels/custom_ops.cpp."""
import torch

__all__ = ["mymuladd", "mymul", "myadd_out"]


def mymuladd(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """a * b + c, elementwise (a and b: same shape, floating dtype, same device)."""
    return torch.ops.foo.mymuladd.default(a, b, c)


def mymul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a * b, elementwise."""
    return torch.ops.foo.mymul.default(a, b)


def myadd_out(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
    """out = a + b, in place on out (same shape, dtype and device as a; contiguous)."""
    torch.ops.foo.myadd_out.default(a, b, out)


def _check_pair(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    torch._check(a.shape == b.shape, lambda: f"{name}: a and b must have the same shape, got {a.shape} and {b.shape}")
    torch._check(a.dtype == b.dtype, lambda: f"{name}: a and b must have the same dtype, got {a.dtype} and {b.dtype}")
    torch._check(a.dtype.is_floating_point, lambda: f"{name}: expected floating point tensors, got {a.dtype}")
    torch._check(a.device == b.device, lambda: f"{name}: a and b must be on the same device")


@torch.library.register_fake("foo::mymuladd")
def _mymuladd_fake(a, b, c):
    _check_pair("mymuladd", a, b)
    return torch.empty_like(a, memory_format=torch.contiguous_format)


@torch.library.register_fake("foo::mymul")
def _mymul_fake(a, b):
    _check_pair("mymul", a, b)
    return torch.empty_like(a, memory_format=torch.contiguous_format)


@torch.library.register_fake("foo::myadd_out")
def _myadd_out_fake(a, b, out):
    # The same checks as the C++ kernel: a traced call whose result goes unused must still fail like eager.
    _check_pair("myadd_out", a, b)
    torch._check(
        out.shape == a.shape and out.dtype == a.dtype and out.device == a.device,
        lambda: f"myadd_out: out must match a in shape, dtype and device, got {tuple(out.shape)} {out.dtype} on "
        f"{out.device} for a {tuple(a.shape)} {a.dtype} on {a.device}",
    )
    torch._check(out.is_contiguous(), lambda: "myadd_out: out must be contiguous")


def _mymuladd_setup(ctx, inputs, output):
    a, b, _ = inputs
    ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)


def _mymuladd_backward(ctx, grad):
    a, b = ctx.saved_tensors
    grad_a = mymul(grad.contiguous(), b) if ctx.needs_input_grad[0] else None
    grad_b = mymul(grad.contiguous(), a) if ctx.needs_input_grad[1] else None
    return grad_a, grad_b, None


def _mymul_setup(ctx, inputs, output):
    a, b = inputs
    ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)


def _mymul_backward(ctx, grad):
    a, b = ctx.saved_tensors
    grad_a = mymul(grad.contiguous(), b) if ctx.needs_input_grad[0] else None
    grad_b = mymul(grad.contiguous(), a) if ctx.needs_input_grad[1] else None
    return grad_a, grad_b


torch.library.register_autograd("foo::mymuladd", _mymuladd_backward, setup_context=_mymuladd_setup)
torch.library.register_autograd("foo::mymul", _mymul_backward, setup_context=_mymul_setup)
