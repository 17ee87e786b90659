"""The caching allocator: reuse, statistics, empty_cache, out-of-memory under a cap."""
import re

import pytest
import torch

import torch_foo  # noqa: F401
from helpers import run_python


def test_blocks_are_reused():
    torch.foo.synchronize()
    t = torch.empty(1000, device="foo")
    ptr = t.data_ptr()
    del t
    u = torch.empty(1000, device="foo")
    assert u.data_ptr() == ptr
    torch.empty(1000, device="foo")  # a second block, beside u
    segments = torch.foo.memory_stats()["segment.all.current"]
    for _ in range(100):
        torch.empty(1000, device="foo")
    assert torch.foo.memory_stats()["segment.all.current"] == segments


def test_statistics_follow_allocations():
    torch.foo.reset_peak_memory_stats()
    base = torch.foo.memory_allocated()
    t = torch.empty(1 << 20, device="foo")  # 4 MiB
    assert torch.foo.memory_allocated() == base + (4 << 20)
    assert torch.foo.max_memory_allocated() >= base + (4 << 20)
    assert torch.foo.memory_reserved() >= torch.foo.memory_allocated()
    del t
    assert torch.foo.memory_allocated() == base
    assert torch.foo.max_memory_allocated() >= base + (4 << 20)
    torch.foo.reset_peak_memory_stats()
    assert torch.foo.max_memory_allocated() == base
    stats = torch.foo.memory_stats()
    for key in ("allocated_bytes.all.current", "reserved_bytes.all.peak", "allocation.all.allocated",
                "allocation.all.freed"):
        assert key in stats
    torch.foo.empty_cache()
    assert torch.foo.memory_reserved() == torch.foo.memory_allocated()


def test_small_and_large_pools_are_counted_apart():
    def counts():
        stats = torch.foo.memory_stats()
        return {key: stats[f"{key}.current"] for key in (
            "allocation.all", "allocation.small_pool", "allocation.large_pool",
            "allocated_bytes.small_pool", "allocated_bytes.large_pool")}

    before = counts()
    small = torch.empty(1000, device="foo")  # 4000 bytes: small pool (blocks up to 1 MiB, as on CUDA)
    large = torch.empty(1 << 20, device="foo")  # 4 MiB: large pool
    during = counts()
    assert during["allocation.all"] == before["allocation.all"] + 2
    assert during["allocation.small_pool"] == before["allocation.small_pool"] + 1
    assert during["allocation.large_pool"] == before["allocation.large_pool"] + 1
    assert during["allocated_bytes.small_pool"] - before["allocated_bytes.small_pool"] >= 4000
    assert during["allocated_bytes.large_pool"] - before["allocated_bytes.large_pool"] >= 4 << 20
    del small, large
    assert counts() == before


def test_no_leak_after_many_cycles():
    x = torch.randn(64, device="foo")
    for _ in range(100):  # warm the cache
        (x * 2 + 1).sum()
    before = torch.foo.memory_stats()
    for i in range(10_000):
        y = torch.empty(1 + i % 300, device="foo")
        (x * 2 + 1).sum()
        del y
    after = torch.foo.memory_stats()
    assert after["allocated_bytes.all.current"] == before["allocated_bytes.all.current"]
    assert after["allocation.all.current"] == before["allocation.all.current"]
    assert after["reserved_bytes.all.current"] <= before["reserved_bytes.all.current"] + (4 << 20)


def test_devices_have_separate_pools():
    base1 = torch.foo.memory_allocated(1)
    t = torch.empty(1 << 18, device="foo:1")
    assert torch.foo.memory_allocated(1) == base1 + (1 << 20)
    del t


def test_out_of_memory_under_cap():
    result = run_python(
        """
        import torch, torch_foo
        a = torch.empty(40 << 20, dtype=torch.uint8, device="foo")
        try:
            torch.empty(30 << 20, dtype=torch.uint8, device="foo")
        except torch.OutOfMemoryError as exc:
            print("OOM:", exc)
        # the process keeps working and the failed allocation left nothing behind
        assert torch.foo.memory_allocated() == 40 << 20, torch.foo.memory_allocated()
        assert torch.foo.memory_stats()["num_ooms"] == 1
        x = torch.arange(1000.0, device="foo")
        assert torch.equal((x * 2).cpu(), torch.arange(1000.0) * 2)
        del a, x
        b = torch.empty(60 << 20, dtype=torch.uint8, device="foo")
        b.fill_(7)
        assert b[-1].item() == 7
        print("after", torch.foo.memory_allocated())
        """,
        env={"TORCH_FOO_MEMORY_LIMIT": "64MiB"},
    )
    assert result.returncode == 0, result.stderr
    assert "OOM:" in result.stdout
    message = result.stdout.split("OOM:")[1].splitlines()[0]
    assert "30.00 MiB" in message and "64.00 MiB" in message and "foo:0" in message
    # what is in use by tensors, what the allocator caches, what is free
    assert "40.00 MiB is allocated by tensors" in message, message
    assert re.search(r"(\d+\.\d\d [KMG]iB|\d+ bytes) is cached by the allocator", message), message
    assert "24.00 MiB is free" in message, message
    assert f"after {60 << 20}" in result.stdout


def test_mem_get_info_follows_new_segments():
    torch.foo.synchronize(1)
    torch.foo.empty_cache()
    free, total = torch.foo.mem_get_info(1)
    assert 0 < free <= total
    reserved = torch.foo.memory_reserved(1)
    t = torch.empty((3 << 20) + 1, dtype=torch.uint8, device="foo:1")  # the cache is empty: a new segment
    grown = torch.foo.memory_reserved(1) - reserved
    assert grown >= (3 << 20) + 1
    free_after, total_after = torch.foo.mem_get_info("foo:1")
    assert total_after == total
    assert free - free_after == grown  # the device lost exactly the new segment
    assert torch.accelerator.get_memory_info(1) == (free_after, total)
    del t
    assert torch.foo.mem_get_info(1)[0] == free_after  # cached, still taken from the device
    torch.foo.empty_cache()
    assert torch.foo.mem_get_info(1)[0] == free


def test_mem_get_info_total_is_the_cap():
    result = run_python(
        """
        import torch, torch_foo
        print(*torch.foo.mem_get_info(0), *torch.foo.mem_get_info(1))
        t = torch.empty(5 << 20, dtype=torch.uint8, device="foo:1")
        print(*torch.foo.mem_get_info(1))
        """,
        env={"TORCH_FOO_MEMORY_LIMIT": "48MiB"},
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    cap = 48 << 20
    assert [int(v) for v in first.split()] == [cap, cap, cap, cap]
    assert [int(v) for v in second.split()] == [cap - (5 << 20), cap]


def test_device_count_from_environment():
    result = run_python(
        "import torch, torch_foo; print(torch.foo.device_count()); torch.empty(1, device='foo:2')",
        env={"TORCH_FOO_DEVICE_COUNT": "3"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_record_stream_defers_reuse_until_the_stream_is_done():
    side = torch.foo.Stream()
    with torch.foo.stream(side):
        torch.foo._sleep(500_000)  # keeps the side stream busy far longer than the checks below take
    t = torch.empty(1 << 16, device="foo")
    block = t.data_ptr()
    t.record_stream(side)
    del t
    other = torch.empty(1 << 16, device="foo")
    assert other.data_ptr() != block  # the side stream may still use the block
    side.synchronize()
    assert torch.empty(1 << 16, device="foo").data_ptr() == block


def test_memory_summary_reports_the_pools():
    result = run_python("""
        import torch, torch_foo
        big = torch.empty(1 << 20, device="foo:1")  # 4 MiB: large pool
        print(torch.foo.memory_summary("foo:1"))
        print(torch.foo.memory_summary("foo:1", abbreviated=True))
    """)
    assert result.returncode == 0, result.stderr
    full, abbreviated = result.stdout.split("foo:1 memory summary")[1:]
    rows = {line[:28].strip(): line[28:].split() for line in full.splitlines()[2:] if not line.startswith("out-of")}
    assert rows["allocated memory"][:2] == ["4.0", "MiB"]
    assert rows["allocations"] == ["1", "1", "1", "0"]
    assert "out-of-memory errors: 0" in full
    assert "from small pool" not in abbreviated


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA present, pin_memory=True pins for CUDA")
def test_pinned_block_resized_under_a_queued_copy_stays_mapped_for_the_copy():
    """Resizing a pinned tensor reallocates it; non_blocking copies still queued on its old block (to or from the
    device) must find it mapped until they have run (as CUDA's host allocator keeps it until the copy's event), instead
    of faulting in the stream's worker or landing in memory a new mapping reuses. A subprocess: the fault kills it."""
    result = run_python("""
        import torch, torch_foo
        n = 1 << 20
        expected = torch.arange(n, dtype=torch.float32)
        source = torch.empty(n, pin_memory=True).copy_(expected)  # resizable, unlike pin_memory()'s storage
        landing = torch.empty(n, pin_memory=True)
        stream = torch.foo.Stream()
        with torch.foo.stream(stream):
            torch.foo._sleep(300_000)  # the copies below stay queued while the host resizes
            on_device = source.to("foo", non_blocking=True)
            landing.copy_(on_device, non_blocking=True)
        source.resize_(2 * n)
        landing.resize_(2 * n)
        assert not stream.query(), "the copies ran before the resizes: the test proves nothing"
        stream.synchronize()
        assert torch.equal(on_device.cpu(), expected)
        assert torch.equal(source[:n], expected)  # the resize kept the old contents
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
