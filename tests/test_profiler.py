"""torch.profiler on foo: kernels as device events on their device and stream, memory events, traces."""
import json

import pytest
import torch
import torch_foo  # noqa: F401
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from helpers import assert_same

needs_device_events = pytest.mark.skipif(
    not torch.ops.foo.records_device_events(),
    reason="this torch has no PrivateUse1 Kineto profiler registry (torch/csrc/profiler/standalone/"
    "privateuse1_profiler.h, torch >= 2.13): foo kernels are not device events",
)

ACTIVITIES = [ProfilerActivity.CPU, ProfilerActivity.PrivateUse1]


def device_events(prof):
    return [e for e in prof.events() if e.device_type == DeviceType.PrivateUse1]


def assert_no_errors(stderr):
    # Kineto announces each session's start and stop on stderr ("USDT: ... profiler_start"), for CPU-only profiles too.
    assert [line for line in stderr.splitlines() if not line.startswith("USDT:")] == []


@needs_device_events
def test_foo_is_a_supported_activity():
    assert ProfilerActivity.PrivateUse1 in torch.profiler.supported_activities()


@needs_device_events
def test_every_kernel_is_a_device_event_linked_to_its_operator():
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    x, y = a.foo(), b.foo()
    with profile(activities=ACTIVITIES) as prof:
        product = torch.mm(x, y)
        total = torch.cumsum(product.relu(), 0)  # cumsum: through the CPU fallback, still a device kernel
        torch.foo.synchronize()
    assert_same(total, torch.cumsum(torch.mm(a, b).relu(), 0))
    kernels = device_events(prof)
    assert {"aten::mm", "aten::relu", "aten::cumsum"} <= {e.name for e in kernels}
    for kernel in kernels:
        assert kernel.device_index == 0 and kernel.time_range.end >= kernel.time_range.start
    averages = {e.key: e for e in prof.key_averages()}
    for op in ("aten::mm", "aten::relu", "aten::cumsum"):
        assert averages[op].self_device_time_total > 0, op
    # the device event lies within the operator that launched it
    mm_op = next(e for e in prof.events() if e.name == "aten::mm" and e.device_type == DeviceType.CPU)
    mm_kernel = next(e for e in kernels if e.name == "aten::mm")
    assert mm_op.time_range.start <= mm_kernel.time_range.start <= mm_kernel.time_range.end <= mm_op.time_range.end


@needs_device_events
def test_copies_are_device_events_timed_when_their_stream_runs_them():
    host = torch.randn(1 << 16).pin_memory()
    with profile(activities=ACTIVITIES) as prof:
        torch.foo._sleep(200_000)  # the stream is busy: the upload below runs after its operator returned
        on_device = host.to("foo", non_blocking=True)
        across = on_device.to("foo:1")
        back = across.cpu()
        torch.foo.synchronize()
    assert_same(back, host, device="cpu")
    copies = [e for e in device_events(prof) if e.name.startswith("Memcpy")]
    assert {e.name for e in copies} == {"Memcpy HtoD (Pinned -> Device)", "Memcpy DtoD (Device -> Device)",
                                        "Memcpy DtoH (Device -> Pageable)"}
    upload = next(e for e in copies if e.name.startswith("Memcpy HtoD"))
    assert upload.device_index == 0 and upload.time_range.end >= upload.time_range.start
    issued = next(e for e in prof.events() if e.name == "aten::copy_" and e.device_type == DeviceType.CPU)
    assert upload.time_range.start >= issued.time_range.end
    assert next(e for e in copies if e.name.startswith("Memcpy DtoD")).device_index == 1
    assert {e.key: e for e in prof.key_averages()}["aten::copy_"].device_time_total > 0


@needs_device_events
def test_device_events_carry_their_device_and_stream():
    a = torch.randn(1000)
    side = torch.foo.Stream("foo:1")
    with profile(activities=ACTIVITIES) as prof:
        with torch.foo.stream(side):
            result = a.to("foo:1").mul(3)
        side.synchronize()
    assert_same(result, a * 3, device="foo:1")
    mul = next(e for e in device_events(prof) if e.name == "aten::mul")
    assert mul.device_index == 1
    assert mul.device_resource_id == side.stream_id


def test_memory_events_record_foo_allocations_and_frees():
    a = torch.randn(1 << 16)
    with profile(activities=ACTIVITIES, profile_memory=True) as prof:
        x = a.foo()  # 256 KiB
        y = x * 2
        del x
    assert_same(y, a * 2)
    # an allocation counts towards the operator that made it, a free outside any operator is a [memory] event
    allocations = [e.device_memory_usage for e in prof.events() if e.name == "aten::empty_strided"]
    assert 1 << 18 in allocations  # the copy's (a 512-byte block holds the scalar 2 on the device)
    mul = next(e for e in prof.events() if e.name == "aten::mul" and e.device_type == DeviceType.CPU)
    assert mul.device_memory_usage == 1 << 18 and mul.cpu_memory_usage == 0
    freed = [e.device_memory_usage for e in prof.events() if e.name == "[memory]" and e.device_memory_usage]
    assert freed == [-(1 << 18)]


@needs_device_events
def test_chrome_trace_has_a_lane_per_foo_stream(tmp_path):
    side = torch.foo.Stream()
    a = torch.randn(256)
    with profile(activities=ACTIVITIES) as prof:
        x = a.foo()
        y = x.exp()
        with torch.foo.stream(side):
            z = x.sin()
        torch.foo.synchronize()
    assert_same(y, a.exp())
    assert_same(z, a.sin())
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())["traceEvents"]
    kernels = {e["name"]: e for e in trace if e.get("cat") == "kernel"}
    assert kernels["aten::exp"]["tid"] != kernels["aten::sin"]["tid"]
    assert str(kernels["aten::sin"]["tid"]) == str(side.stream_id)
    lane_names = [e["args"]["name"] for e in trace if e.get("ph") == "M" and e.get("name") == "thread_name"]
    assert f"foo:0 stream {side.stream_id}" in lane_names


@needs_device_events
def test_record_function_ranges_nest_around_device_work():
    a = torch.randn(32, 32)
    with profile(activities=ACTIVITIES) as prof:
        with record_function("outer"):
            with record_function("inner"):
                result = a.foo().tanh()
    assert_same(result, a.tanh())
    events = prof.events()
    outer = next(e for e in events if e.name == "outer")
    inner = next(e for e in events if e.name == "inner")
    tanh = next(e for e in events if e.name == "aten::tanh" and e.device_type == DeviceType.CPU)
    assert inner.cpu_parent is outer and tanh.cpu_parent is inner
    assert inner.device_time_total > 0  # the kernel's device time counts towards the ranges around it


@pytest.mark.parametrize("use_kineto", [False, pytest.param(True, marks=needs_device_events)],
                         ids=["foo-events", "kineto"])
def test_use_device_foo(use_kineto, capfd):
    """use_kineto=False times each operator with foo events on its stream (the profiler stubs), True traces kernels."""
    a = torch.randn(128, 128)
    with torch.autograd.profiler.profile(use_device="foo", use_kineto=use_kineto) as prof:
        result = a.foo() @ a.foo()
    assert_same(result, a @ a)
    mm = next(e for e in prof.key_averages() if e.key == "aten::mm")
    assert mm.device_time_total > 0 and mm.cpu_time_total > 0
    assert 0 < prof.self_cpu_time_total
    assert_no_errors(capfd.readouterr().err)


@needs_device_events
@pytest.mark.slow
def test_compiled_kernels_are_device_events_named_after_the_kernel():
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: (x * 2).relu().sum())
    a = torch.randn(100)
    compiled(a.foo())  # compile outside the profile
    with profile(activities=ACTIVITIES) as prof:
        result = compiled(a.foo())
    assert_same(result, (a * 2).relu().sum())
    assert any(e.name.startswith("cpp_fused_") for e in device_events(prof))
    torch._dynamo.reset()
