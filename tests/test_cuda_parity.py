"""torch.foo against torch.cuda: the same names, signatures and errors (issue 14), and backend metadata of tensors."""
import concurrent.futures
import copy
import importlib
import io
import os
import pickle
import pydoc
import signal
import sys

import pytest
import torch

import torch_foo
from helpers import assert_same, run_python


# ---- the module ------------------------------------------------------------------------------------------------------
def test_dir_shows_only_the_public_names_and_each_has_a_docstring():
    names = dir(torch.foo)
    assert names == sorted(torch.foo.__all__)
    assert not {"Any", "OrderedDict", "contextlib", "dataclass", "torch", "Union", "annotations"} & set(names)
    undocumented = [n for n in names if not isinstance(getattr(torch.foo, n), (tuple, int))
                    and not (getattr(torch.foo, n).__doc__ or "").strip()]
    assert undocumented == []
    text = pydoc.render_doc(torch.foo, renderer=pydoc.plaintext)
    assert "torch.cuda" in text and "set_per_process_memory_fraction" in text and "Stream(torch.Stream)" in text


# ---- devices ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("use", [
    lambda: torch.ones(2, device="foo:7"),
    lambda: torch.foo.set_device(7),
    lambda: torch.foo.synchronize(7),
    lambda: torch.foo.Stream(device=7),
    lambda: torch.foo.memory_allocated(7),
    lambda: torch.ones(2).to("foo:2"),
    lambda: torch.accelerator.set_device_index(2),
])
def test_bad_device_index_raises_runtime_error_naming_the_valid_range(use):
    with pytest.raises(RuntimeError, match=r"foo device index \d is out of range: valid devices are foo:0 to foo:1") \
            as caught:
        use()
    assert not isinstance(caught.value, IndexError)


def test_get_device_capability_and_peer_access():
    capability = torch.foo.get_device_capability("foo:1")
    properties = torch.foo.get_device_properties(1)
    assert capability == (properties.major, properties.minor) == torch.foo.get_device_capability()
    assert all(isinstance(v, int) for v in capability)
    assert torch.foo.can_device_access_peer(0, 1) and torch.foo.can_device_access_peer("foo:1", torch.device("foo:0"))
    assert not torch.foo.can_device_access_peer(1, 1)  # as cudaDeviceCanAccessPeer for a device and itself
    with pytest.raises(RuntimeError, match="foo:0 to foo:1"):
        torch.foo.can_device_access_peer(0, 2)
    # what peer access promises: a copy from one device to the other
    source = torch.arange(10.0, device="foo:0")
    assert_same(source.to("foo:1"), torch.arange(10.0), device="foo:1")


def test_init_raises_in_a_child_forked_after_foo_was_used():
    torch.foo.init()
    assert torch.foo.is_initialized()
    torch.ones(1, device="foo").add_(1)
    pid = os.fork()
    if pid == 0:
        failed = 4
        try:
            signal.alarm(60)
            failed = int(torch.foo.is_initialized())
            for init in (torch.foo.init, torch.foo._lazy_init):
                try:
                    init()
                except RuntimeError as error:
                    failed += "forked subprocess" not in str(error)
                else:
                    failed += 1
        finally:
            os._exit(failed)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    torch.foo.init()  # the parent is unaffected


# ---- streams and events ----------------------------------------------------------------------------------------------
def test_streams_and_events_are_classes():
    stream = torch.foo.Stream(device="foo:1", priority=-1)
    assert isinstance(stream, torch.foo.Stream) and isinstance(stream, torch.Stream)
    assert stream.device == torch.device("foo:1") and stream.priority == -1 and torch.foo.Stream().priority == 0
    assert isinstance(torch.foo.current_stream(), torch.foo.Stream)
    assert isinstance(torch.foo.default_stream(1), torch.foo.Stream) and torch.foo.default_stream(1).stream_id == 0
    assert torch.foo.current_stream(1) == torch.accelerator.current_stream(1)
    event = stream.record_event()
    assert isinstance(event, torch.foo.Event) and isinstance(event, torch.Event)
    assert event.device == torch.device("foo:1")
    with pytest.raises(ValueError, match="interprocess"):
        torch.foo.Event(interprocess=True)
    unbound = torch.foo.Event()  # takes the device of its first record, as on CUDA
    with torch.foo.device(1):
        unbound.record()
    assert unbound.device == torch.device("foo:1")
    with pytest.raises(RuntimeError, match="cannot be re-recorded|cannot be recorded"):
        unbound.record(torch.foo.current_stream(0))
    # torch.accelerator and torch.Stream take foo's subclasses
    torch.accelerator.set_stream(stream)
    try:
        assert torch.accelerator.current_stream(1) == stream
    finally:
        torch.accelerator.set_stream(torch.foo.default_stream(1))
        torch.accelerator.set_device_index(0)


def test_wait_stream_orders_work_of_another_devices_stream():
    side = torch.foo.Stream(device=1)
    main = torch.foo.current_stream(1)
    source = torch.arange(1 << 20, dtype=torch.float32).pin_memory()
    with torch.foo.stream(side):
        torch.foo._sleep(100_000)  # the upload below lands only after this
        on_device = source.to("foo:1", non_blocking=True)
    main.wait_stream(side)
    with torch.foo.stream(main):
        total = on_device.sum(dtype=torch.float64)
    assert total.item() == source.sum(dtype=torch.float64).item()


@pytest.mark.parametrize("synchronize", [lambda: torch.accelerator.synchronize("foo:1"),
                                         lambda: torch.foo.synchronize(1)], ids=["accelerator", "torch.foo"])
def test_synchronize_of_another_device_waits_for_its_side_streams(synchronize):
    side = torch.foo.Stream(device=1)
    assert torch.foo.current_device() == 0
    with torch.foo.stream(side):
        torch.foo._sleep(200_000)  # keeps the side stream busy: only a real wait sees it done
        result = torch.arange(1000.0, device="foo:1") * 2
        done = side.record_event()
    synchronize()
    assert done.query() and side.query()
    assert_same(result, torch.arange(1000.0) * 2, device="foo:1")


def test_synchronize_waits_before_any_foo_tensor_was_made():
    result = run_python(
        """
        import torch, torch_foo
        torch.foo._sleep(1_000_000)  # work queued before anything initialised foo on PyTorch's side
        torch.foo.synchronize(0)
        print("idle", torch.foo.default_stream(0).query())
        """
    )
    assert result.returncode == 0, result.stderr
    assert "idle True" in result.stdout, result.stdout


def test_event_elapsed_time_and_its_errors():
    start, end = torch.foo.Event(enable_timing=True), torch.foo.Event(enable_timing=True)
    start.record()
    torch.foo._sleep(1000)
    end.record()
    end.synchronize()
    assert isinstance(start.elapsed_time(end), float) and start.elapsed_time(end) >= 0
    plain = torch.Event(device="foo", enable_timing=True)  # a torch.Event as the peer works too
    plain.record()
    plain.synchronize()
    assert start.elapsed_time(plain) >= 0
    with pytest.raises(RuntimeError, match="must be recorded"):
        start.elapsed_time(torch.foo.Event(enable_timing=True))
    untimed = torch.foo.Event()
    untimed.record()
    untimed.synchronize()
    with pytest.raises(RuntimeError, match="enable_timing=True"):
        start.elapsed_time(untimed)
    with pytest.raises(TypeError, match="foo event"):
        start.elapsed_time(torch.Event(device="cpu"))
    other_device = torch.foo.Event(enable_timing=True, device=1)
    other_device.record()
    other_device.synchronize()
    with pytest.raises(ValueError, match="same device"):
        start.elapsed_time(other_device)


def test_stream_context_selects_stream_and_device_and_restores_both():
    side = torch.foo.Stream(device=1)
    context = torch.foo.stream(side)
    assert isinstance(context, torch.foo.StreamContext)
    with context as entered:
        assert entered is side
        assert torch.foo.current_device() == 1 and torch.foo.current_stream() == side
        result = torch.arange(6.0, device="foo") * 2
    assert torch.foo.current_device() == 0 and torch.foo.current_stream(1) == torch.foo.default_stream(1)
    assert_same(result, torch.arange(6.0) * 2, device="foo:1")
    with torch.foo.StreamContext(None) as entered:
        assert entered is None and torch.foo.current_device() == 0
    with pytest.raises(ValueError, match="foo stream"):
        torch.foo.StreamContext(torch.Stream(device="cpu"))


# ---- memory ----------------------------------------------------------------------------------------------------------
def test_out_of_memory_error_is_torchs():
    assert torch.foo.OutOfMemoryError is torch.OutOfMemoryError


def test_per_process_memory_fraction_caps_the_allocator():
    torch.foo.synchronize(1)
    torch.foo.empty_cache()
    total = torch.foo.mem_get_info(1)[1]
    fraction = (torch.foo.memory_reserved(1) + (12 << 20)) / total  # room for 12 MiB more
    assert torch.foo.get_per_process_memory_fraction(1) == 1.0
    torch.foo.set_per_process_memory_fraction(fraction, 1)
    try:
        assert torch.foo.get_per_process_memory_fraction("foo:1") == fraction
        fits = torch.full((1 << 20,), 3.0, device="foo:1")  # 4 MiB
        with pytest.raises(torch.foo.OutOfMemoryError, match=r"memory fraction .* limits foo:1"):
            torch.empty(16 << 20, dtype=torch.uint8, device="foo:1")
        assert_same(fits * 2, torch.full((1 << 20,), 6.0), device="foo:1")  # the process carries on
        torch.empty(16 << 20, dtype=torch.uint8, device="foo:0")  # other devices are not capped
    finally:
        torch.foo.set_per_process_memory_fraction(1.0, 1)
    assert torch.empty(16 << 20, dtype=torch.uint8, device="foo:1").numel() == 16 << 20
    with pytest.raises(TypeError, match="float"):
        torch.foo.set_per_process_memory_fraction(1, 1)
    with pytest.raises(ValueError, match="0~1"):
        torch.foo.set_per_process_memory_fraction(1.5)


def test_caching_allocator_alloc_and_delete():
    torch.foo.synchronize(1)
    base = torch.foo.memory_allocated(1)
    pointer = torch.foo.caching_allocator_alloc(1000, device=1)
    assert torch.foo.memory_allocated(1) == base + 1024  # 1000 bytes take a 1 KiB block, as on CUDA
    torch.foo.caching_allocator_delete(pointer)
    assert torch.foo.memory_allocated(1) == base
    with pytest.raises(ValueError, match="not a live block"):
        torch.foo.caching_allocator_delete(pointer)
    with pytest.raises(ValueError, match="not foo device memory"):
        torch.foo.caching_allocator_delete(torch.ones(4).data_ptr())
    # a stream's blocks come from that stream's pool: the freed block is what the stream gets next
    side = torch.foo.Stream(device=1)
    on_side = torch.foo.caching_allocator_alloc(4096, device="foo:1", stream=side)
    torch.foo.caching_allocator_delete(on_side)
    assert torch.foo.caching_allocator_alloc(4096, device=1, stream=side) == on_side
    torch.foo.caching_allocator_delete(on_side)
    with torch.foo.stream(side):  # and tensors allocated on the stream reuse it
        assert torch.empty(1024, device="foo:1").data_ptr() == on_side
    with pytest.raises(ValueError, match="stream of foo:0"):
        torch.foo.caching_allocator_alloc(16, device=0, stream=side)
    assert torch.foo.caching_allocator_alloc(0) == 0
    torch.foo.caching_allocator_delete(0)  # what a 0-byte allocation returns: a no-op, as on CUDA


CUDA_HOST_STAT_KEYS = {
    f"{stat}.{field}" for stat in ("active_requests", "active_bytes", "allocations", "allocated_bytes")
    for field in ("current", "peak", "allocated", "freed")
} | {f"{timing}.{field}" for timing in ("host_alloc_time", "host_free_time")
     for field in ("total", "max", "min", "count", "avg")} | {"num_host_alloc", "num_host_free"}


def test_host_memory_stats_has_cudas_keys():
    stats = torch.foo.host_memory_stats()
    assert set(stats) == CUDA_HOST_STAT_KEYS and list(stats) == sorted(stats)
    assert all(isinstance(value, int) and value >= 0 for value in stats.values())


def test_host_memory_stats_count_pinned_allocations_and_frees():
    torch.foo.reset_peak_host_memory_stats()
    before = torch.foo.host_memory_stats()
    pinned = torch.empty(1 << 20, dtype=torch.uint8).pin_memory()
    during = torch.foo.host_memory_stats()
    for key in ("allocations", "active_requests"):
        assert during[f"{key}.current"] == before[f"{key}.current"] + 1
        assert during[f"{key}.allocated"] == before[f"{key}.allocated"] + 1
    for key in ("allocated_bytes", "active_bytes"):
        assert during[f"{key}.current"] == before[f"{key}.current"] + pinned.numel()
        assert during[f"{key}.peak"] >= during[f"{key}.current"]
    assert during["num_host_alloc"] == before["num_host_alloc"] + 1
    assert during["host_alloc_time.count"] == before["host_alloc_time.count"] + 1
    del pinned
    after = torch.foo.host_memory_stats()
    assert after["allocated_bytes.current"] == before["allocated_bytes.current"]
    assert after["allocated_bytes.freed"] == before["allocated_bytes.freed"] + (1 << 20)
    assert after["num_host_free"] == before["num_host_free"] + 1
    assert after["allocated_bytes.peak"] >= before["allocated_bytes.current"] + (1 << 20)

    torch.foo.reset_peak_host_memory_stats()
    assert torch.foo.host_memory_stats()["allocated_bytes.peak"] == after["allocated_bytes.current"]
    torch.foo.reset_accumulated_host_memory_stats()
    reset = torch.foo.host_memory_stats()
    assert reset["allocated_bytes.allocated"] == reset["allocated_bytes.freed"] == reset["num_host_alloc"] == 0
    assert reset["allocated_bytes.current"] == after["allocated_bytes.current"]


MIB = 1 << 20


def test_mem_pool_keeps_its_blocks_apart_from_the_shared_cache():
    torch.foo.empty_cache()
    reserved = torch.foo.memory_reserved()
    pool = torch.foo.MemPool()
    assert pool.id[0] == 0 and pool.id[1] > 0 and pool.allocator is None and pool.use_count() == 1
    with torch.foo.use_mem_pool(pool):
        assert pool.use_count() == 2
        pooled = torch.empty(MIB, device="foo")
        address = pooled.data_ptr()
        del pooled
    assert pool.use_count() == 1
    shared = torch.empty(MIB, device="foo")
    assert shared.data_ptr() != address  # the pool's free block is not the shared cache's
    with torch.foo.use_mem_pool(pool):
        again = torch.empty(MIB, device="foo")
    assert again.data_ptr() == address  # but the pool's own
    del again, shared
    torch.foo.empty_cache()
    assert torch.foo.memory_reserved() == reserved + 4 * MIB  # empty_cache keeps the pool's block
    del pool
    assert torch.foo.memory_reserved() == reserved  # deleting the pool gives it back


def test_mem_pool_tensors_outlive_the_pool_and_then_join_the_shared_cache():
    torch.foo.empty_cache()
    reserved = torch.foo.memory_reserved()
    pool = torch.foo.MemPool()
    with torch.foo.use_mem_pool(pool):
        kept = torch.arange(6.0, device="foo")
    del pool
    assert kept.cpu().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    address = kept.data_ptr()
    del kept
    assert torch.empty(6, device="foo").data_ptr() == address  # now an ordinary cached block
    torch.foo.empty_cache()
    assert torch.foo.memory_reserved() == reserved


def test_memory_snapshot_and_history_as_torch_cuda_memory(tmp_path):
    torch.foo.empty_cache()
    torch.foo.memory._record_memory_history(max_entries=100_000)
    try:
        kept_line = sys._getframe().f_lineno + 1
        kept = torch.empty(MIB, device="foo")  # 4 MiB: a large segment
        side = torch.foo.Stream("foo:1")
        with torch.foo.stream(side):
            gone = torch.ones(10, device="foo:1")  # a small one, on another device and stream
        gone_address = gone.data_ptr()
        gone_line = sys._getframe().f_lineno + 1
        del gone
        torch.foo.empty_cache()  # gives the free block back: segment_free
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(1 << 60, dtype=torch.uint8, device="foo")
        snapshot = torch.foo.memory._snapshot()
    finally:
        torch.foo.memory._record_memory_history(None)
    (segment,) = [s for s in snapshot["segments"] if s["address"] == kept.data_ptr()]
    assert segment["device"] == 0 and segment["total_size"] == 4 * MIB and segment["segment_type"] == "large"
    assert segment["allocated_size"] == segment["active_size"] == 4 * MIB and segment["segment_pool_id"] == (0, 0)
    here = {"filename": __file__, "name": "test_memory_snapshot_and_history_as_torch_cuda_memory"}
    assert segment["blocks"] == [{"address": kept.data_ptr(), "size": 4 * MIB, "requested_size": 4 * MIB,
                                  "state": "active_allocated", "frames": segment["frames"]}]
    assert segment["frames"][0] == {**here, "line": kept_line}  # the Python stack, innermost frame first
    assert not [s for s in snapshot["segments"] if s["address"] == gone_address]
    zero, one = snapshot["device_traces"]
    assert [(e["action"], e["size"]) for e in zero if e.get("addr") == kept.data_ptr()][-2:] == [
        ("segment_alloc", 4 * MIB), ("alloc", 4 * MIB)]
    assert [e["action"] for e in one if e.get("addr") == gone_address][-5:] == [
        "segment_alloc", "alloc", "free_requested", "free_completed", "segment_free"]
    assert {e["stream"] for e in one if e.get("addr") == gone_address} == {side.stream_id}
    (free,) = [e for e in one if e.get("addr") == gone_address and e["action"] == "free_requested"][-1:]
    assert free["frames"][0] == {**here, "line": gone_line}
    assert zero[-1]["action"] == "oom" and zero[-1]["size"] >= 1 << 60 and "addr" not in zero[-1]
    assert torch.foo.memory._snapshot()["device_traces"] == [[], []]  # stopping forgets the history
    torch.foo.memory._dump_snapshot(str(tmp_path / "snapshot.pickle"))
    with open(tmp_path / "snapshot.pickle", "rb") as f:
        assert set(pickle.load(f)) == {"segments", "device_traces"}


@pytest.mark.parametrize("enabled, context", [("all", None), ("all", "alloc"), ("state", "state")])
def test_memory_history_records_the_stacks_context_asks_for(enabled, context):
    torch.foo.memory._record_memory_history(enabled, context=context, stacks="python")
    try:
        x = torch.empty(1000, device="foo")
        address = x.data_ptr()
        del x
        kept = torch.empty(1000, device="foo")
        snapshot = torch.foo.memory._snapshot()
    finally:
        torch.foo.memory._record_memory_history(None)
    events = [e for e in snapshot["device_traces"][0] if e.get("addr") == address]
    (block,) = [s for s in snapshot["segments"] if s["address"] == kept.data_ptr()]
    assert bool(block["frames"]) == (context is not None)
    if enabled == "state":
        assert events == []
    else:
        assert [bool(e["frames"]) for e in events if e["action"] in ("alloc", "free_requested")][:2] == [
            context is not None, context == "all"]  # x's (kept may reuse its block)
    with pytest.raises(ValueError, match="context must be"):
        torch.foo.memory._record_memory_history(context="some")


def test_mem_pool_snapshot_lists_its_own_segments():
    pool = torch.foo.MemPool()
    with torch.foo.use_mem_pool(pool):
        pooled = torch.empty(100, device="foo")
    shared = torch.empty(100, device="foo")
    assert [s["address"] for s in pool.snapshot()] == [pooled.data_ptr()]
    assert shared.data_ptr() in [s["address"] for s in torch.foo.memory_snapshot()]


def test_use_mem_pool_routes_only_the_calling_threads_allocations_on_its_device():
    pool = torch.foo.MemPool()
    with torch.foo.use_mem_pool(pool, device="foo:1"):
        other_device = torch.empty(MIB, device="foo:0")
        with concurrent.futures.ThreadPoolExecutor(1) as worker:
            other_thread = worker.submit(lambda: torch.empty(MIB, device="foo:1")).result()
        pooled = torch.empty(MIB, device="foo:1")
    pooled_address, other_thread_address = pooled.data_ptr(), other_thread.data_ptr()
    assert other_device.device == torch.device("foo:0")
    del other_thread, pooled
    with torch.foo.use_mem_pool(pool, device="foo:1"):
        assert torch.empty(MIB, device="foo:1").data_ptr() == pooled_address
    assert torch.empty(MIB, device="foo:1").data_ptr() == other_thread_address  # it went to the shared cache


def test_mem_pool_refuses_what_foo_does_not_support():
    with pytest.raises(NotImplementedError, match="custom allocators"):
        torch.foo.MemPool(allocator=object())
    with pytest.raises(TypeError, match="torch.foo.MemPool"):
        with torch.foo.use_mem_pool(None):
            pass


# ---- amp and backends ------------------------------------------------------------------------------------------------
def test_amp_aliases_match_torch_amp_on_cpu():
    amp = importlib.import_module("torch.foo.amp")
    assert amp is torch.foo.amp
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with torch.foo.amp.autocast(dtype=torch.bfloat16):
        product = a.foo() @ b.foo()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = a @ b
    assert_same(product, expected)
    scaler = torch.foo.amp.GradScaler(init_scale=1024.0)
    assert scaler._device == "foo" and scaler.get_scale() == 1024.0
    assert_same(scaler.scale(a.foo().sum()), a.sum() * 1024.0)

    class Square(torch.autograd.Function):
        @staticmethod
        @torch.foo.amp.custom_fwd(cast_inputs=torch.float32)
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @torch.foo.amp.custom_bwd
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    x = torch.randn(4, dtype=torch.float16).foo().requires_grad_()
    with torch.foo.amp.autocast():
        y = Square.apply(x)
    assert y.dtype == torch.float32  # the forward ran on float32 inputs
    y.sum().backward()
    assert_same(x.grad, 2 * x.detach().cpu())


def test_backends_foo_switches_the_fallback_policy():
    backends = importlib.import_module("torch.backends.foo")
    assert backends is torch.backends.foo and torch.backends.foo.is_built() and torch.backends.foo.is_available()
    assert torch.backends.foo.fallback_policy == torch_foo.fallback_policy() == "allow"
    x = torch.arange(5.0, device="foo")
    with torch.backends.foo.flags(fallback_policy="error"):
        assert torch_foo.fallback_policy() == "error"
        with pytest.raises(NotImplementedError, match="cumsum"):
            torch.cumsum(x, 0)
    assert torch_foo.fallback_policy() == "allow"
    # Assigning a switch obeys torch.backends.disable_global_flags() as cudnn's do (PyTorch's test utilities, imported
    # by tests/test_device_generic.py, call it).
    with torch.backends.__allow_nonbracketed_mutation():
        torch.backends.foo.fallback_policy = "warn"
        try:
            assert torch_foo.fallback_policy() == "warn"
        finally:
            torch.backends.foo.fallback_policy = "allow"
    assert_same(torch.cumsum(x, 0), torch.cumsum(torch.arange(5.0), 0))


# ---- backend metadata ------------------------------------------------------------------------------------------------
def tagged(device="foo:1"):
    t = torch.arange(6.0, device=device)
    torch._utils.set_tensor_metadata(t, {"packed_format": True, "checked": False})
    return t


def test_backend_meta_round_trips_and_merges():
    t = tagged()
    assert torch._utils.get_tensor_metadata(t) == {"packed_format": True, "checked": False}
    torch._utils.set_tensor_metadata(t, {"checked": True, "extra": True})
    assert torch._utils.get_tensor_metadata(t) == {"packed_format": True, "checked": True, "extra": True}
    assert torch._utils.get_tensor_metadata(torch.arange(3.0, device="foo")) == {}
    # shallow copies carry a copy of it: changing it on one leaves the other alone
    detached = t.detach()
    torch._utils.set_tensor_metadata(detached, {"only_detached": True})
    assert "only_detached" not in torch._utils.get_tensor_metadata(t)
    assert torch._utils.get_tensor_metadata(detached)["packed_format"] is True


def test_backend_meta_survives_save_load_and_deepcopy():
    t = tagged()
    buffer = io.BytesIO()
    torch.save({"t": t}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)["t"]
    assert torch._utils.get_tensor_metadata(loaded) == torch._utils.get_tensor_metadata(t)
    assert_same(loaded, torch.arange(6.0), device="foo:1")
    buffer.seek(0)
    on_cpu = torch.load(buffer, map_location="cpu")["t"]
    assert torch._utils.get_tensor_metadata(on_cpu) == {}  # CPU tensors have no backend metadata (as on OpenReg)
    copied = copy.deepcopy(t)
    assert torch._utils.get_tensor_metadata(copied) == torch._utils.get_tensor_metadata(t)
    assert_same(copied, torch.arange(6.0), device="foo:1")
    module = torch.nn.Linear(2, 2).foo()
    torch._utils.set_tensor_metadata(module.weight, {"packed_format": True})
    assert torch._utils.get_tensor_metadata(copy.deepcopy(module).weight) == {"packed_format": True}


def test_backend_meta_survives_loading_under_fake_tensor_mode():
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    buffer = io.BytesIO()
    torch.save(tagged(), buffer)
    buffer.seek(0)
    with FakeTensorMode():
        fake = torch.load(buffer)
        assert isinstance(fake, FakeTensor) and fake.device == torch.device("foo:1")
        assert torch._utils.get_tensor_metadata(fake) == {"packed_format": True, "checked": False}
        created = torch.empty(3, device="foo")
        torch._utils.set_tensor_metadata(created, {"packed_format": True})
        assert torch._utils.get_tensor_metadata(created) == {"packed_format": True}
