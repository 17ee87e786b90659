"""Many processes on foo: the "foo" c10d backend (Gloo over host views of device memory), DDP, FSDP2, faults, and
foo tensors shared between processes through torch.multiprocessing.

Multi-process tests spawn 2 ranks (foo:0 and foo:1) through tests/dist_workers.py and compare every foo result with
the same collective on CPU tensors through plain Gloo, or with single-process CPU training.
"""
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from torch_foo import distributed as foo_distributed, ipc

import dist_workers
from helpers import REPO, run_python

sys.path.insert(0, str(REPO / "examples"))
import train_ddp  # noqa: E402

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8, torch.int32,
          torch.int64, torch.bool, torch.complex64)


@pytest.fixture(scope="module", autouse=True)
def backend_library():
    """Builds the c10d backend's library in this process, once, instead of in the first ranks spawned (which would
    wait for each other's build)."""
    foo_distributed.load_backend_library()


def test_backend_library_loaded_by_the_first_process_group_not_by_import():
    result = run_python("""
        import torch, torch.distributed as dist, torch_foo
        from torch_foo._registration import mapped_backend_libraries
        def mapped():
            return sorted({path.rsplit("/", 1)[1].rsplit("-", 1)[0] for path in mapped_backend_libraries()})
        print(mapped())
        dist.init_process_group("foo", store=dist.HashStore(), rank=0, world_size=1)
        t = torch.ones(3, device="foo")
        dist.all_reduce(t)
        print(mapped(), t.sum().item())
        dist.destroy_process_group()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [
        "['torch_foo_C', 'torch_foo_kernels']", "['torch_foo_C', 'torch_foo_distributed', 'torch_foo_kernels'] 3.0"]


def test_backend_registered_for_foo():
    assert "foo" in dist.Backend.backend_list
    assert dist.Backend.default_device_backend_map["foo"] == "foo"
    assert dist.Backend.backend_capability["foo"] == ["foo"]
    assert dist.is_backend_available("foo")


@pytest.mark.parametrize("device", ["foo:0", "foo:1"])
def test_host_alias_views_device_memory_of_offset_and_strided_views(device):
    base = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    foo_base = base.to(device)
    view = foo_base[1:, 2::3]  # offset and strides
    alias = torch.ops.foo.host_alias(view)
    assert alias.device.type == "cpu"
    assert (alias.shape, alias.stride(), alias.storage_offset()) == (view.shape, view.stride(), view.storage_offset())
    torch.testing.assert_close(alias, base[1:, 2::3])
    alias.mul_(-1)  # writes through the alias are the device's memory
    expected = base.clone()
    expected[1:, 2::3] *= -1
    torch.testing.assert_close(foo_base.cpu(), expected)


def test_host_alias_keeps_device_memory_alive():
    t = torch.full((1 << 18,), 3.0, device="foo")
    allocated = torch.foo.memory_allocated()
    alias = torch.ops.foo.host_alias(t)
    del t
    assert torch.foo.memory_allocated() == allocated  # the alias holds the block
    torch.testing.assert_close(alias, torch.full((1 << 18,), 3.0))
    del alias
    assert torch.foo.memory_allocated() < allocated


def test_host_alias_waits_for_the_current_stream():
    source = torch.full((1000,), 5.0).pin_memory()
    t = torch.zeros(1000, device="foo")
    torch.ops.foo.sleep(200_000)
    t.copy_(source, non_blocking=True)  # queued behind the sleep
    torch.testing.assert_close(torch.ops.foo.host_alias(t), source)


def test_host_alias_refuses_lazy_conjugates():
    z = torch.randn(4, dtype=torch.complex64).to("foo").conj()
    with pytest.raises(RuntimeError, match="resolve_conj"):
        torch.ops.foo.host_alias(z)


def test_host_alias_passes_cpu_tensors_through():
    t = torch.ones(3)
    assert torch.ops.foo.host_alias(t).data_ptr() == t.data_ptr()


@pytest.mark.slow
def test_every_collective_contiguous_and_strided_matches_cpu_gloo():
    names = list(dist_workers.collective_table(0, 2))
    outcomes = dist_workers.spawn(dist_workers.collectives_worker, names=names, dtypes=[torch.float32])
    assert outcomes[0] == outcomes[1]
    # "error": CPU Gloo refused it too, with the same exception type; torch 2.11's Gloo has no all_to_all.
    assert {key for key, value in outcomes[0].items() if value != "ok" and key[0] != "all_to_all"} == set()


@pytest.mark.slow
def test_every_gloo_dtype_matches_cpu_gloo():
    names = ["all_reduce_sum", "all_reduce_max", "broadcast", "all_gather_into_tensor", "send_recv"]
    outcomes = dist_workers.spawn(dist_workers.collectives_worker, names=names, dtypes=list(DTYPES),
                                  layouts=("contiguous",))
    # Where CPU Gloo supports a dtype, foo gives the same bits; where it raises, foo raises the same error type.
    assert outcomes[0][("all_reduce_sum", "torch.float32", "contiguous")] == "ok"
    assert outcomes[0][("all_reduce_sum", "torch.int64", "contiguous")] == "ok"
    assert outcomes[0][("broadcast", "torch.bool", "contiguous")] == "ok"


@pytest.mark.slow
def test_average_is_sum_divided_by_world_size():
    dist_workers.spawn(dist_workers.average_worker)


@pytest.mark.slow
def test_collectives_follow_foo_streams_and_async_ops_overlap():
    dist_workers.spawn(dist_workers.stream_order_worker)


@pytest.mark.slow
def test_init_process_group_default_backend_is_foo_and_collectives_leak_nothing():
    assert dist_workers.spawn(dist_workers.default_backend_worker) == {0: ("foo:foo", "foo"), 1: ("foo:foo", "foo")}


@pytest.mark.slow
def test_ddp_on_two_processes_equals_single_process_training():
    epochs, batch_size = 2, 60
    parameters = dist_workers.spawn(dist_workers.ddp_worker, epochs=epochs, batch_size=batch_size)
    reference = train_ddp.reference_parameters(epochs, batch_size)
    for rank in (0, 1):
        for got, expected in zip(parameters[rank], reference):
            # Gradients are averaged in another order than one backward over the full batch: float rounding only.
            torch.testing.assert_close(torch.tensor(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_killed_peer_gives_an_error_not_a_hang():
    reports = dist_workers.spawn(dist_workers.killed_peer_worker, reporting=[0], timeout=60)
    assert reports[0].startswith("RuntimeError"), reports
    assert "work queued on a foo stream failed (stream 0 of foo:0: " in reports[0], reports


@pytest.mark.slow
def test_mismatched_shapes_and_bad_ranks_raise_clear_errors():
    errors = dist_workers.spawn(dist_workers.mismatch_worker, timeout=60)
    for rank in (0, 1):
        assert errors[rank][("shape", "foo")] == errors[rank][("shape", "cpu")], errors[rank]
        assert "Detected mismatch between collectives" in errors[rank][("shape", "foo")]
        for bad_rank in (5, -2):
            sent = errors[rank][("send", bad_rank)]
            assert f"destination rank {bad_rank} is not in the process group (ranks 0 to 1)" in sent
            assert f"source rank {bad_rank} is not in the process group" in errors[rank][("recv", bad_rank)]


@pytest.mark.slow
def test_disagreeing_ranks_and_too_small_receives_get_errors_and_the_group_works_on():
    errors = dist_workers.spawn(dist_workers.disagreement_worker, timeout=120)
    called = "rank {} called {}"
    expected = {
        "shape": (called.format(0, "ALLREDUCE (SUM) on 1 tensor Float [4]"),
                  called.format(1, "ALLREDUCE (SUM) on 1 tensor Float [5]")),
        "dtype": (called.format(0, "BROADCAST with root 0 on 1 tensor Float [4]"),
                  called.format(1, "BROADCAST with root 0 on 1 tensor Int [4]")),
        "operation": (called.format(0, "ALLREDUCE (SUM)"), called.format(1, "BROADCAST with root 0")),
        "gather size": (called.format(0, "_ALLGATHER_BASE on 1 tensor Float [3]"),
                        called.format(1, "_ALLGATHER_BASE on 1 tensor Float [4]")),
        "all_to_all splits": (called.format(0, "ALLTOALL_BASE of Float sending [1, 2] and receiving [1, 2] elements"),
                              called.format(1, "ALLTOALL_BASE of Float sending [1, 2] and receiving [2, 1] elements")),
    }
    too_large = ("foo: a receive from rank 0 (tag 0) into RECV on 1 tensor Float [4] (16 bytes) got a larger message: "
                 "SEND on 1 tensor Float [8] (32 bytes); the message was received and dropped")
    assert all(too_large in errors[1].pop(f"recv from {source}") for source in (0, None)), errors[1]
    for rank in (0, 1):
        assert set(errors[rank]) == set(expected), errors[rank]
        for case, described in expected.items():
            message = errors[rank][case]
            assert "foo collectives: the ranks disagree on collective #" in message, message
            assert all(part in message for part in described), (case, message)
            assert "this one exchanged no data on any rank" in message, message


@pytest.mark.slow
def test_fsdp2_fully_shard_on_two_processes_equals_single_process_training():
    epochs, batch_size = 1, 60
    parameters = dist_workers.spawn(dist_workers.fsdp_worker, epochs=epochs, batch_size=batch_size)
    reference = train_ddp.reference_parameters(epochs, batch_size)
    for rank in (0, 1):
        for got, expected in zip(parameters[rank], reference):
            torch.testing.assert_close(torch.tensor(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_train_ddp_example_runs_under_spawn():
    result = subprocess.run([sys.executable, "examples/train_ddp.py", "--spawn", "2", "--epochs", "1"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 processes on foo: parameters differ from single-process CPU training by at most" in result.stdout


# ---- foo tensors through torch.multiprocessing ----------------------------------------------------------------------

def _wait_until(condition, timeout: float = 20) -> bool:
    """Polls condition (what another process does takes a moment to arrive); the verdict is the condition's."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.fixture
def spawn_context():
    return mp.get_context("spawn")


@pytest.mark.slow
def test_ipc_queue_round_trip_of_offset_and_strided_views_shares_memory(spawn_context):
    base_cpu = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    base = base_cpu.to("foo:1")
    allocated = torch.foo.memory_allocated(1)
    queue, replies = spawn_context.Queue(), spawn_context.Queue()
    receiver = spawn_context.Process(target=dist_workers.ipc_receiver, args=(queue, replies))
    receiver.start()
    queue.put((dist_workers.ipc_views(base), dist_workers.ipc_views(base_cpu)))
    assert replies.get(timeout=60) == "done"
    receiver.join(timeout=30)
    assert receiver.exitcode == 0
    expected = base_cpu.clone()
    expected[:, 1::3].neg_()  # written by the receiver into the same memory
    torch.testing.assert_close(base.cpu(), expected)
    assert torch.foo.memory_allocated(1) == allocated  # nothing was copied on this side
    assert _wait_until(lambda: ipc.shared_storages_held() == 0)  # every lease given back


@pytest.mark.slow
def test_ipc_spawn_argument_and_pipe(spawn_context):
    tensor = torch.zeros(4, device="foo:0")
    replies = spawn_context.Queue()
    child = spawn_context.Process(target=dist_workers.ipc_spawn_argument, args=(tensor, replies))
    child.start()
    assert replies.get(timeout=60) == [100.0] * 4
    child.join(timeout=30)
    torch.testing.assert_close(tensor.cpu(), torch.full((4,), 100.0))

    sender, receiver = spawn_context.Pipe()
    sender.send(tensor[1:3])
    received = receiver.recv()  # this process opens its own memory: still the same bytes
    received.fill_(-1)
    torch.testing.assert_close(tensor.cpu(), torch.tensor([100.0, -1.0, -1.0, 100.0]))


@pytest.mark.slow
def test_ipc_memory_freed_only_when_every_process_let_go(spawn_context):
    before = torch.foo.memory_allocated(1)
    tensor = torch.ones(1 << 20, device="foo:1")
    queue, replies = spawn_context.Queue(), spawn_context.Queue()
    child = spawn_context.Process(target=dist_workers.ipc_receiver_that_dies, args=(queue, replies))
    child.start()
    queue.put(tensor)
    del tensor
    assert replies.get(timeout=60) == float(1 << 20)
    assert torch.foo.memory_allocated(1) == before + 4 * (1 << 20)  # the receiver still holds it
    child.join(timeout=30)
    assert child.exitcode == -9
    # The receiver was killed without letting go: the kernel closed its lease, and the block was released.
    assert _wait_until(lambda: ipc.shared_storages_held() == 0)
    assert _wait_until(lambda: torch.foo.memory_allocated(1) == before), (torch.foo.memory_allocated(1), before)


@pytest.mark.slow
def test_ipc_sender_exiting_first_leaves_the_receivers_tensor_intact(spawn_context):
    queue, acks = spawn_context.Queue(), spawn_context.Queue()
    sender = spawn_context.Process(target=dist_workers.ipc_sender_that_exits, args=(queue, acks))
    sender.start()
    tensor = queue.get(timeout=60)
    acks.put("got it")
    sender.join(timeout=30)
    assert sender.exitcode == 0
    expected = torch.arange(1000, dtype=torch.float32) * 2
    torch.testing.assert_close(tensor.cpu(), expected)
    tensor.add_(1)  # still device memory this process can compute on
    torch.testing.assert_close(tensor.cpu(), expected + 1)
    del tensor
