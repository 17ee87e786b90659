"""The foo device as PyTorch sees it: devices, guard, threads, streams, events, pinned memory, accelerator API."""
import gc
import os
import threading

import pytest
import torch

import torch_foo
from helpers import run_python


def test_backend_registered():
    assert torch._C._get_privateuse1_backend_name() == "foo"
    assert torch.foo.is_available()
    assert torch.foo.device_count() == 2
    t = torch.ones(3, device="foo")
    assert t.is_foo and t.device == torch.device("foo:0")
    assert torch.ones(2).foo(1).device == torch.device("foo:1")
    m = torch.nn.Linear(2, 2).foo()
    assert m.weight.device.type == "foo"
    assert t.untyped_storage().is_foo


def test_current_device_and_context_manager():
    assert torch.foo.current_device() == 0
    with torch.foo.device(1):
        assert torch.foo.current_device() == 1
        assert torch.empty(2, device="foo").device.index == 1
    assert torch.foo.current_device() == 0
    torch.foo.set_device("foo:1")
    try:
        assert torch.tensor([1.0], device="foo").device.index == 1
    finally:
        torch.foo.set_device(0)


@pytest.mark.parametrize("bad", [2, 7, -1])
def test_bad_device_index(bad):
    with pytest.raises((IndexError, RuntimeError), match=r"foo:0 to foo:1|out of range|invalid device"):
        torch.foo.set_device(bad)
    with pytest.raises((IndexError, RuntimeError)):
        torch.empty(2, device=f"foo:{bad}") if bad >= 0 else torch.empty(2, device=torch.device("foo", bad))


def test_mixed_devices_raise():
    a = torch.ones(3, device="foo:0")
    b = torch.ones(3, device="foo:1")
    with pytest.raises(RuntimeError, match="same device"):
        a + b
    with pytest.raises(RuntimeError, match="same device"):
        a + torch.ones(3)
    # 0-dim CPU tensors act as scalars, as on CUDA.
    assert torch.equal((a + torch.tensor(2.0)).cpu(), torch.full((3,), 3.0))


def test_threads_have_their_own_current_device():
    errors = []
    barrier = threading.Barrier(4)

    def worker(index):
        try:
            device = index % 2
            torch.foo.set_device(device)
            barrier.wait()
            for _ in range(50):
                assert torch.foo.current_device() == device
                t = torch.arange(10.0, device="foo") * (index + 1)
                assert t.device.index == device
                assert torch.equal(t.cpu(), torch.arange(10.0) * (index + 1))
        except Exception as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert torch.foo.current_device() == 0


def test_copies_between_host_and_devices():
    cpu = torch.randn(4, 5)
    on0 = cpu.to("foo:0")
    on1 = on0.to("foo:1")
    assert on1.device == torch.device("foo:1")
    assert torch.equal(on1.cpu(), cpu)
    # non-contiguous and dtype-converting copies in every direction
    t = on0.t().to("foo:1", dtype=torch.float64)
    assert torch.equal(t.cpu(), cpu.t().double())
    dst = torch.zeros(5, 4, device="foo:0", dtype=torch.float16)
    dst.copy_(cpu.t())
    assert torch.equal(dst.cpu(), cpu.t().half())
    host = torch.empty(5, 4, dtype=torch.float64).t()
    host.copy_(on0)
    assert torch.equal(host, cpu.double())
    assert on0[1, 2].item() == cpu[1, 2].item()


def test_pinned_memory_and_non_blocking_copy():
    cpu = torch.randn(1000)
    pinned = cpu.pin_memory()
    assert pinned.is_pinned()
    assert not cpu.is_pinned()
    stream = torch.foo.Stream()
    with torch.foo.stream(stream):
        on_device = pinned.to("foo", non_blocking=True)
        back = torch.empty(1000).pin_memory()
        back.copy_(on_device, non_blocking=True)
    stream.synchronize()
    assert torch.equal(back, cpu)


def test_streams_and_events():
    s1 = torch.foo.Stream()
    s2 = torch.foo.Stream(device=1, priority=-1)
    assert s1.device == torch.device("foo:0") and s2.device == torch.device("foo:1")
    assert torch.foo.current_stream().stream_id == torch.foo.default_stream().stream_id
    with torch.foo.stream(s1):
        assert torch.foo.current_stream() == s1
        x = torch.ones(100, device="foo") * 2
        start = torch.foo.Event(enable_timing=True)
        end = torch.foo.Event(enable_timing=True)
        start.record()
        y = (x @ x.unsqueeze(1)).sum()
        end.record()
    end.synchronize()
    assert start.elapsed_time(end) >= 0
    assert end.query()
    s1.synchronize()
    assert s1.query()
    assert y.item() == 400.0
    # ordering across streams: s3 waits for s1's event
    s3 = torch.foo.Stream()
    event = s1.record_event()
    s3.wait_event(event)
    s3.synchronize()
    torch.foo.synchronize()


def test_event_of_one_device_rejected_on_another():
    event = torch.Event(device="foo:0")
    event.record(torch.foo.current_stream(0))
    with pytest.raises(RuntimeError, match="foo"):
        event.record(torch.foo.current_stream(1))


def test_accelerator_api():
    assert torch.accelerator.current_accelerator() == torch.device("foo")
    assert torch.accelerator.device_count() == 2
    torch.accelerator.set_device_index(1)
    assert torch.accelerator.current_device_index() == 1
    torch.accelerator.set_device_index(0)
    torch.accelerator.synchronize()
    stream = torch.accelerator.current_stream()
    assert stream.device.type == "foo"
    before = torch.accelerator.memory_allocated(0)
    t = torch.empty(1 << 20, device="foo")
    assert torch.accelerator.memory_allocated(0) >= before + (4 << 20)
    del t
    free, total = torch.accelerator.get_memory_info(0)
    assert 0 < free <= total


def test_host_dereference_of_device_memory_faults():
    result = run_python(
        """
        import ctypes, torch, torch_foo
        t = torch.ones(1024, device="foo")
        print("value", ctypes.c_float.from_address(t.data_ptr()).value, flush=True)
        """
    )
    assert result.returncode != 0, result.stdout
    assert "value" not in result.stdout


def test_rng_reproducible_and_equal_to_cpu():
    torch.manual_seed(123)
    cpu = [torch.rand(5), torch.randn(5), torch.randint(0, 10, (5,))]
    torch.manual_seed(123)
    foo = [torch.rand(5, device="foo"), torch.randn(5, device="foo"), torch.randint(0, 10, (5,), device="foo")]
    for f, c in zip(foo, cpu):
        assert torch.equal(f.cpu(), c)
    torch.foo.manual_seed(7)
    state = torch.foo.get_rng_state()
    a = torch.empty(8, device="foo").normal_()
    torch.foo.set_rng_state(state)
    b = torch.empty(8, device="foo").normal_()
    assert torch.equal(a.cpu(), b.cpu())
    torch.manual_seed(7)
    c = torch.empty(8).normal_()
    assert torch.equal(a.cpu(), c)
    torch.manual_seed(5)
    d_cpu = torch.nn.functional.dropout(torch.ones(100), 0.5)
    torch.manual_seed(5)
    d_foo = torch.nn.functional.dropout(torch.ones(100, device="foo"), 0.5)
    assert torch.equal(d_foo.cpu(), d_cpu)
    gen = torch.Generator(device="foo:1").manual_seed(3)
    u = torch.empty(4, device="foo:1").uniform_(generator=gen)
    assert torch.equal(u.cpu(), torch.empty(4).uniform_(generator=torch.Generator().manual_seed(3)))


def test_async_copy_is_ordered_by_events_across_streams():
    """A non_blocking copy from pinned memory runs on the copy stream's worker; a kernel on another stream that waits
    on an event recorded after the copy sees the complete data."""
    source = torch.arange(1 << 22, dtype=torch.float32).pin_memory()
    copy_stream, compute_stream = torch.foo.Stream(), torch.foo.Stream()
    with torch.foo.stream(copy_stream):
        on_device = source.to("foo", non_blocking=True)
        copied = copy_stream.record_event()
    compute_stream.wait_event(copied)
    with torch.foo.stream(compute_stream):
        total = on_device.sum(dtype=torch.float64)
    compute_stream.synchronize()
    assert total.item() == float((1 << 22) * ((1 << 22) - 1) // 2)
    assert copied.query()


def test_kernel_families_can_be_dropped_and_restored():
    x = torch.rand(8, device="foo") + 0.5
    torch_foo.reset_fallback_stats()
    assert torch.ops.foo.drop_kernels("unary")
    try:
        assert "unary (dropped)" in torch.ops.foo.kernel_families()
        dropped = x.exp()  # now served by the fallback, with the same result
        assert "aten::exp.out" in torch_foo.fallback_stats()  # exp is composite over exp.out on other backends
    finally:
        assert torch.ops.foo.restore_kernels("unary")
    torch_foo.reset_fallback_stats()
    assert torch.equal(x.exp().cpu(), dropped.cpu())
    assert torch_foo.fallback_stats() == {}
    assert not torch.ops.foo.restore_kernels("unary")  # already registered


def test_cross_device_non_blocking_copy_reads_its_source_before_later_writes():
    for _ in range(3):  # each round is one chance for the write to overtake the copy
        # An upload in flight on foo:1 delays the copy queued behind it.
        torch.empty(64 << 20, dtype=torch.uint8).pin_memory().to("foo:1", non_blocking=True)
        source = torch.zeros(1000, device="foo:0")
        copied = source.to("foo:1", non_blocking=True)
        source.add_(1)  # later work on foo:0's stream
        torch.foo.synchronize(1)
        assert torch.equal(copied.cpu(), torch.zeros(1000))


def test_forked_child_cannot_use_foo_and_leaves_the_parents_tensors_alone():
    x = torch.arange(1000.0, device="foo")
    side = torch.foo.Stream()
    with torch.foo.stream(side):  # work in flight on a worker thread the child will not have
        torch.empty(32 << 20, dtype=torch.uint8).pin_memory().to("foo", non_blocking=True)
    pid = os.fork()
    if pid == 0:
        failed = 1
        try:
            failed = int(not torch.foo._is_in_bad_fork())
            for use in (lambda: x + 1, lambda: x.cpu(), side.synchronize, lambda: torch.ones(1, device="foo")):
                try:
                    use()
                    failed += 1
                except RuntimeError as error:
                    failed += "forked" not in str(error)
            del x  # must not hand the parent's memory back
            gc.collect()
        finally:
            os._exit(failed)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not torch.foo._is_in_bad_fork()
    side.synchronize()
    assert torch.equal(x.cpu(), torch.arange(1000.0))
    assert torch.equal((x + 1).cpu(), torch.arange(1000.0) + 1)
