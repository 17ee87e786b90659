"""torch.compile with the default backend (Inductor) on foo, compared with the same compiled code on CPU."""
import copy
import signal

import pytest
import torch
import torch._dynamo.testing
import torch.nn as nn
import torch.nn.functional as F
import torch_foo  # noqa: F401
from torch._dynamo.device_interface import get_interface_for_device

from helpers import assert_same, run_python


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def run_compiled(model, inputs, device, steps, optimizer, **compile_options):
    """Trains a copy of `model` on `device` for `steps` compiled steps; returns (outputs, parameters) on CPU."""
    model = copy.deepcopy(model).to(device)
    compiled = torch.compile(model, **compile_options)
    opt = optimizer(model.parameters()) if steps else None
    outputs = []
    for x in inputs[: max(steps, 1)] if steps else inputs:
        out = compiled(x.to(device))
        outputs.append(out.detach().cpu())
        if steps:
            out.pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    return outputs, [p.detach().cpu() for p in model.parameters()]


def assert_compiled_same(model, inputs, steps=0, optimizer=None, exact=False, **compile_options):
    foo_out, foo_params = run_compiled(model, inputs, "foo", steps, optimizer, **compile_options)
    cpu_out, cpu_params = run_compiled(model, inputs, "cpu", steps, optimizer, **compile_options)
    tolerances = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-4, "atol": 1e-5}
    for f, c in zip(foo_out + foo_params, cpu_out + cpu_params):
        torch.testing.assert_close(f, c, **tolerances)


def sgd(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def adam(params):
    return torch.optim.Adam(params, lr=1e-3)


@pytest.mark.slow
def test_pointwise_and_reduction_run_as_device_kernels():
    def f(x, y):
        return (x * y + 1).relu().sum(1)

    x, y = torch.randn(8, 16), torch.randn(8, 16)
    torch_foo.reset_fallback_stats()
    result = torch.compile(f)(x.foo(), y.foo())
    assert_same(result, torch.compile(f)(x, y), device="foo:0", rtol=0, atol=0)
    assert torch_foo.fallback_stats() == {}  # one generated kernel, no aten op


@pytest.mark.slow
def test_runs_on_the_inputs_device():
    def f(x):
        return torch.nn.functional.gelu(x) * 3

    x = torch.randn(33)
    assert_same(torch.compile(f)(x.to("foo:1")), torch.compile(f)(x), device="foo:1", rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", [sgd, adam], ids=["sgd", "adam"])
def test_mlp_training_step(optimizer):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    inputs = [torch.randn(16, 32) for _ in range(3)]
    # The generated kernels and the extern matmuls are the same code on both devices: bit for bit equal.
    assert_compiled_same(model, inputs, steps=3, optimizer=optimizer, exact=True)


@pytest.mark.slow
def test_compiled_optimizer_step():
    results = {}
    for device in ("foo", "cpu"):
        torch.manual_seed(1)
        model = nn.Linear(16, 4).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        step = torch.compile(opt.step)
        for _ in range(2):
            model(torch.ones(3, 16, device=device)).sum().backward()
            step()
        results[device] = [p.detach().cpu() for p in model.parameters()]
    # Inductor lowers a few ops for CPU differently (its checks name the device type): equal within rounding.
    for f, c in zip(results["foo"], results["cpu"]):
        torch.testing.assert_close(f, c)


@pytest.mark.slow
def test_small_cnn_training_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 10))
    inputs = [torch.randn(4, 3, 8, 8) for _ in range(2)]
    # Compiled CPU runs convolutions through oneDNN, foo through ATen's convolution: equal within rounding.
    assert_compiled_same(model, inputs, steps=2, optimizer=sgd)


@pytest.mark.slow
def test_transformer_block_training_step():
    torch.manual_seed(0)
    model = nn.TransformerEncoderLayer(64, 8, 128, dropout=0.0, activation="gelu", batch_first=True)
    inputs = [torch.randn(2, 16, 64) for _ in range(2)]
    assert_compiled_same(model, inputs, steps=2, optimizer=sgd)


@pytest.mark.slow
def test_attention_compiles_to_the_kernel_it_compiles_to_on_cpu():
    # Inductor keeps the attention kernel ATen picks for the fake inputs: foo's pick is CPU's (one fused kernel).
    q, k, v = torch.randn(3, 2, 4, 16, 8).unbind()

    def attention(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    results = {}
    for device in ("cpu", "foo"):
        results[device], code = compiled_code(attention, q.to(device), k.to(device), v.to(device))
        assert "_scaled_dot_product_flash_attention_for_cpu" in code, code
    assert_same(results["foo"], results["cpu"])


@pytest.mark.slow
def test_dynamic_shapes_do_not_recompile_per_size():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64))
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    compiled = torch.compile(copy.deepcopy(model).foo(), backend=counter, dynamic=True)
    frames = []
    for rows in (5, 9, 13, 17):
        x = torch.randn(rows, 32)
        assert_same(compiled(x.foo()), model(x))
        frames.append(counter.frame_count)
    assert frames[-1] == frames[0]  # every size after the first reuses the code compiled for it


@pytest.mark.slow
def test_max_autotune_no_cudagraphs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    assert_compiled_same(model, [torch.randn(16, 32)], mode="max-autotune-no-cudagraphs", exact=True)


@pytest.mark.slow
def test_generated_kernels_fault_on_device_pointers_outside_a_kernel_scope():
    """The compiled kernels reach device memory only through the launch's kernel scope: handed the foo tensors
    themselves (device addresses), the same kernel faults, as host code dereferencing device memory must."""
    code = """
        import torch, torch_foo, torch_foo._inductor as inductor
        {patch}
        f = torch.compile(lambda x: (x * 2).relu())
        x = torch.randn(64)
        assert torch.equal(f(x.foo()).cpu(), (x * 2).relu())
        print("ok")
    """
    launched = run_python(code.format(patch=""))
    assert launched.returncode == 0 and "ok" in launched.stdout, launched.stderr[-3000:]
    bypassed = run_python(code.format(patch="inductor.launch = lambda kernel, device, name, *args: kernel(*args)"))
    assert bypassed.returncode == -signal.SIGSEGV, (bypassed.returncode, bypassed.stderr[-3000:])


def test_kernel_scope_operators_check_their_use():
    with pytest.raises(RuntimeError, match="without a matching _enter_kernel_scope"):
        torch.ops.foo._exit_kernel_scope()
    with pytest.raises(RuntimeError, match="launched on foo:0 with tensors on foo:1"):
        torch.ops.foo._enter_kernel_scope(0, [torch.ones(2, device="foo:1")], "k")
    with pytest.raises(RuntimeError, match="foo device index 7 is out of range"):
        torch.ops.foo._enter_kernel_scope(7, [], "k")
    x = torch.arange(4.0, device="foo")
    (view,) = torch.ops.foo._enter_kernel_scope(0, [x], "k")
    try:
        assert view.device.type == "cpu" and view.data_ptr() != x.data_ptr()
        assert torch.equal(view, torch.arange(4.0))  # the host view reads the device memory in place
        view.add_(1)
    finally:
        torch.ops.foo._exit_kernel_scope()
    assert torch.equal(x.cpu(), torch.arange(4.0) + 1)


def test_cpp_wrapper_is_refused_with_a_reason():
    with torch._inductor.config.patch(cpp_wrapper=True):
        with pytest.raises(Exception, match="supports the Python wrapper only"):
            torch.compile(lambda x: x + 1)(torch.ones(3, device="foo"))


def test_device_interface():
    interface = get_interface_for_device("foo")
    assert get_interface_for_device("foo:1") is interface
    assert interface.device_count() == torch.foo.device_count() and interface.is_available()
    previous = interface.exchange_device(1)
    try:
        assert interface.current_device() == 1
    finally:
        interface.set_device(previous)
    stream = torch.foo.Stream()
    assert isinstance(stream, interface.Stream) and isinstance(torch.foo.Event(), interface.Event)
    with interface.stream(stream):
        assert interface.current_stream() == stream
        assert interface.get_raw_stream(torch.foo.current_device()) == stream.stream_id
    assert interface.Worker.get_device_properties("foo:1").index == 1
    assert interface.get_device_properties(0).multi_processor_count >= 1
    interface.synchronize()


def use_streams_and_events(x):
    side = torch.foo.Stream()
    done = torch.foo.Event()
    y = x * 2
    done.record()
    with torch.foo.stream(side):
        side.wait_event(done)
        z = y + 1
    torch.foo.current_stream().wait_stream(side)
    torch.foo.synchronize()
    return z.sum()


@pytest.mark.slow
def test_streams_and_events_in_a_compiled_function():
    x = torch.randn(1000)
    assert_same(torch.compile(use_streams_and_events)(x.foo()), (x * 2 + 1).sum())


def compiled_code(fn, *args):
    """fn compiled with fullgraph=True (a graph break raises), its result on args and the wrapper's call()."""
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()  # not frames another test compiled with graph breaks allowed
    result, (code,) = run_and_get_code(torch.compile(fn, fullgraph=True), *args)
    return result, code[code.index("def call("):]


@pytest.mark.slow
def test_streams_and_events_stay_in_the_graph_as_cuda_s():
    import torch._dynamo  # noqa: F401  (registers foo's stream tracing)
    from torch_foo import _dynamo as foo_dynamo

    if not foo_dynamo.streams_in_graph:
        pytest.skip("this torch's dynamo traces only its own devices' streams into the graph (torch 2.11)")
    x = torch.randn(1000)
    result, _ = compiled_code(use_streams_and_events, x.foo())
    assert_same(result, (x * 2 + 1).sum())

    def synchronize_after_a_kernel(t):
        u = t + 1
        torch.foo.synchronize()
        return u

    result, call = compiled_code(synchronize_after_a_kernel, x.foo())
    assert_same(result, x + 1)
    assert call.index("launch_foo_kernel(") < call.index("streams.synchronize_device"), call

    side = torch.foo.Stream()

    def one_kernel_on_each_stream(t):
        on_default = t * 2
        with torch.foo.stream(side):
            on_side = t + 1
        torch.foo.current_stream().wait_stream(side)
        return on_default, on_side

    result, call = compiled_code(one_kernel_on_each_stream, x.foo())
    assert_same(result[0], x * 2)
    assert_same(result[1], x + 1)
    on_side_stream = call[call.index("with stream1:"):]
    on_side_stream = on_side_stream[:on_side_stream.index("with default_stream:")]
    assert "cpp_fused_add" in on_side_stream and "cpp_fused_mul" not in on_side_stream, call
