"""Lazy conjugate and negative views and efficient zero tensors on foo behave as on CPU.

A conjugated (x.conj()) or negated (torch._neg_view) view only sets a bit; PyTorch resolves it when an op needs the
values. On foo that resolution is a device copy, which once recursed forever (a crash); matrix products once ignored
the bit (silently wrong). Efficient zero tensors (a tensor with no memory) once became foo tensors over a null pointer.
"""
import pytest
import torch

from helpers import assert_same

torch.manual_seed(0)
Z = torch.randn(3, 4, dtype=torch.complex64)
W = torch.randn(4, 2, dtype=torch.complex64)
VIEWS = {
    "conj": torch.conj,
    "neg": torch._neg_view,
    "conj_neg": lambda t: torch._neg_view(t.conj()),
}


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("device", ["foo:0", "foo:1"])
def test_views_resolve_in_every_copy(view, device):
    make = VIEWS[view]
    on_foo = make(Z.to(device))
    assert on_foo.is_conj() == make(Z).is_conj() and on_foo.is_neg() == make(Z).is_neg()
    expected = make(Z).resolve_conj().resolve_neg()
    torch.testing.assert_close(on_foo.cpu(), expected)  # device -> host
    assert_same(on_foo.clone(), make(Z).clone(), device)  # within the device
    assert_same(on_foo.resolve_conj().resolve_neg(), expected, device)
    other = "foo:1" if device == "foo:0" else "foo:0"
    assert_same(on_foo.to(other), expected, other)  # across devices
    assert_same(make(Z).to(device), expected, device)  # host -> device
    assert_same(on_foo.to(torch.complex128), expected.to(torch.complex128), device)
    assert_same(on_foo.t().contiguous(), expected.t().contiguous(), device)  # strided
    assert on_foo[0, 1].item() == expected[0, 1].item()


@pytest.mark.parametrize("view", VIEWS)
def test_copy_into_a_view_writes_through_its_bits(view):
    make = VIEWS[view]
    cpu_target, foo_target = torch.zeros(3, 4, dtype=torch.complex64), torch.zeros(3, 4, dtype=torch.complex64).foo()
    make(cpu_target).copy_(Z)
    make(foo_target).copy_(Z.foo())
    assert_same(foo_target, cpu_target)
    make(foo_target).copy_(Z)  # from the host
    assert_same(foo_target, cpu_target)
    host = torch.zeros(3, 4, dtype=torch.complex64)
    make(host).copy_(Z.foo())  # to the host
    torch.testing.assert_close(host, cpu_target)


@pytest.mark.parametrize("op", ["mm", "matmul", "mul", "add", "dot", "bmm", "addmm", "vdot", "sum"])
@pytest.mark.parametrize("view", VIEWS)
def test_kernels_honour_the_bits(op, view):
    make = VIEWS[view]
    a, b = Z, W
    calls = {
        "mm": lambda x, y: x @ y,
        "matmul": lambda x, y: torch.matmul(x.unsqueeze(0), y),
        "mul": lambda x, y: x[:2] * y.t(),
        "add": lambda x, y: x[:2] + y.t(),
        "dot": lambda x, y: torch.dot(x[0], y[:, 0]),
        "vdot": lambda x, y: torch.vdot(x[0], y[:, 0]),
        "bmm": lambda x, y: torch.bmm(x.unsqueeze(0), y.unsqueeze(0)),
        "addmm": lambda x, y: torch.addmm(torch.ones(3, 2, dtype=torch.complex64, device=x.device), x, y),
        "sum": lambda x, y: x.sum(0),
    }
    call = calls[op]
    for left, right in [(make(a), b), (a, make(b)), (make(a), make(b))]:
        assert_same(call(left.foo(), right.foo()), call(left, right))


def test_fft_and_pinverse_of_complex_inputs():
    # These resolve conjugate views internally (they crashed the process before).
    square = torch.randn(4, 4, dtype=torch.complex64)
    assert_same(torch.fft.ifft(square.foo()), torch.fft.ifft(square), atol=1e-5, rtol=1e-5)
    assert_same(torch.fft.ihfft(square.real.foo()), torch.fft.ihfft(square.real), atol=1e-5, rtol=1e-5)
    assert_same(torch.linalg.pinv(square.foo()), torch.linalg.pinv(square), atol=1e-4, rtol=1e-4)


def test_backward_through_conjugate_views():
    x_cpu = torch.randn(3, dtype=torch.complex64, requires_grad=True)
    x_foo = x_cpu.detach().foo().requires_grad_()
    for x in (x_cpu, x_foo):
        (x * x.conj()).real.sum().backward()
    assert_same(x_foo.grad, x_cpu.grad)
    r = torch.rand(3, requires_grad=True)
    theta = torch.rand(3, requires_grad=True)
    r_foo, theta_foo = (t.detach().foo().requires_grad_() for t in (r, theta))
    torch.polar(r, theta).abs().sum().backward()
    torch.polar(r_foo, theta_foo).abs().sum().backward()
    assert_same(r_foo.grad, r.grad)
    assert_same(theta_foo.grad, theta.grad, atol=1e-6, rtol=1e-5)


def test_efficient_zero_tensors():
    zero = torch._efficientzerotensor(3, device="foo")
    assert zero._is_zerotensor() and zero.device.type == "foo"
    assert_same(zero + 1, torch.ones(3))
    torch.testing.assert_close(zero.cpu(), torch.zeros(3))
    # sgn's backward at 0 makes one through the fallback.
    x = torch.tensor([0.0, 1.5, -2.0], device="foo", requires_grad=True)
    torch.sgn(x).sum().backward()
    assert_same(x.grad, torch.zeros(3))
    assert_same(x.grad + 2, torch.full((3,), 2.0))


def test_copy_into_an_empty_tensor_checks_shapes_as_cpu():
    with pytest.raises(RuntimeError, match="must match the size"):
        torch.empty(0).copy_(torch.ones(3))
    with pytest.raises(RuntimeError, match="must match the size"):
        torch.empty(0, device="foo").copy_(torch.ones(3, device="foo"))
    torch.empty(0, 3, device="foo").copy_(torch.ones(3))  # broadcastable: fine, as on CPU


def test_sparse_is_refused():
    dense = torch.eye(3, device="foo")
    for make in (lambda: dense.to_sparse(), lambda: dense.to_sparse_csr(),
                 lambda: torch.eye(3).to_sparse().to("foo")):
        with pytest.raises(NotImplementedError, match="foo supports strided tensors only"):
            make()


def test_non_blocking_copy_of_a_conjugate_view_to_pinned_memory():
    # The conjugation is applied on the host after the bytes arrive, so the copy cannot stay queued.
    source = Z.foo().conj()
    host = torch.empty(3, 4, dtype=torch.complex64).pin_memory()
    torch.foo._sleep(100_000)  # keeps the stream busy: a non_blocking copy would stay queued behind it
    host.copy_(source, non_blocking=True)
    torch.foo.synchronize()
    torch.testing.assert_close(host, Z.conj().resolve_conj())
