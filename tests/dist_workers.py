"""Multi-process harness for tests/test_distributed.py: worker functions run in spawned processes, one per rank.

Kept out of the test module so that the spawned children import only this (no pytest collection side effects).
"""
import datetime
import os
import socket
import time
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

PG_TIMEOUT = datetime.timedelta(seconds=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(worker, rank, world_size, port, results, kwargs):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
    try:
        import torch_foo  # noqa: F401

        torch.foo.set_device(rank % torch.foo.device_count())
        results.put((rank, "ok", worker(rank, world_size, **kwargs)))
    except BaseException:  # noqa: BLE001  (the parent reports whatever went wrong in a rank)
        results.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(worker, world_size: int = 2, timeout: float = 60, reporting=None, **kwargs) -> dict:
    """Runs worker(rank, world_size, **kwargs) in `world_size` spawned processes; returns {rank: return value}.

    `reporting`: the ranks expected to return (default all; a rank that kills itself is left out).
    Raises AssertionError with the failing ranks' tracebacks, or if a rank does not report within `timeout` seconds
    (the processes are killed then, so a hang fails the test instead of blocking the suite).
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(worker, r, world_size, port, results, kwargs)) for r in range(world_size)]
    for p in procs:
        p.start()
    reports = {}
    reporting = range(world_size) if reporting is None else reporting
    try:
        for _ in reporting:
            rank, status, value = results.get(timeout=timeout)
            reports[rank] = (status, value)
    except Exception as e:  # queue.Empty
        raise AssertionError(f"ranks {sorted(set(reporting) - set(reports))} did not report in {timeout} s; "
                             f"reports so far: {reports}") from e
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
    errors = {rank: value for rank, (status, value) in reports.items() if status == "error"}
    assert not errors, "\n".join(f"rank {rank}:\n{tb}" for rank, tb in errors.items())
    return {rank: value for rank, (_, value) in reports.items()}


def init(rank: int, world_size: int, backend: str | None = "cpu:gloo,foo:foo", timeout=PG_TIMEOUT) -> None:
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout)


# ---- collectives: every result on foo equals the same collective on CPU tensors through plain Gloo --------------------

SHAPE = (3, 4)


def rank_input(seed: int, dtype=torch.float32, shape=SHAPE) -> torch.Tensor:
    """Small integers (exact in every dtype; products of a few stay small), different per seed."""
    return torch.randint(1, 4, shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


class Placement:
    """Puts CPU values on a device, contiguous or as a strided view with an offset inside a larger buffer of 7s; the
    check afterwards makes sure nothing outside the views was written."""

    def __init__(self, device: str, strided: bool):
        self.device, self.strided, self.buffers = device, strided, []

    def __call__(self, cpu: torch.Tensor) -> torch.Tensor:
        if not self.strided:
            return cpu.to(self.device)
        buffer = torch.full([2 * s + 1 for s in cpu.shape], 7, dtype=cpu.dtype, device=self.device)
        view = buffer[tuple(slice(1, None, 2) for _ in cpu.shape)]
        view.copy_(cpu)
        assert not view.is_contiguous() and view.storage_offset() > 0
        self.buffers.append((buffer, view))
        return view

    def check_untouched(self) -> None:
        for buffer, view in self.buffers:
            outside = buffer.cpu()
            outside[tuple(slice(1, None, 2) for _ in view.shape)] = 7
            assert bool((outside == 7).all()), "a collective wrote outside its strided view"


def collective_table(rank: int, world_size: int) -> dict:
    """name -> fn(place, dtype) running one collective on tensors made by place(); returns the result tensors."""
    op = dist.ReduceOp
    peers = range(world_size)

    def all_reduce(reduce_op):
        def run(place, dtype):
            t = place(rank_input(rank, dtype))
            dist.all_reduce(t, op=reduce_op)
            return [t]
        return run

    def broadcast(place, dtype):
        t = place(rank_input(rank, dtype))
        dist.broadcast(t, src=1)
        return [t]

    def reduce(place, dtype):
        t = place(rank_input(rank, dtype))
        dist.reduce(t, dst=0)
        return [t] if rank == 0 else []

    def all_gather(place, dtype):
        outputs = [place(torch.zeros(SHAPE, dtype=dtype)) for _ in peers]
        dist.all_gather(outputs, place(rank_input(rank, dtype)))
        return outputs

    def all_gather_into_tensor(place, dtype):
        output = place(torch.zeros(world_size * SHAPE[0], SHAPE[1], dtype=dtype))
        dist.all_gather_into_tensor(output, place(rank_input(rank, dtype)))
        return [output]

    def reduce_scatter(place, dtype):
        output = place(torch.zeros(SHAPE, dtype=dtype))
        dist.reduce_scatter(output, [place(rank_input(10 * rank + i, dtype)) for i in peers])
        return [output]

    def reduce_scatter_tensor(place, dtype):
        output = place(torch.zeros(SHAPE, dtype=dtype))
        dist.reduce_scatter_tensor(output, place(rank_input(rank, dtype, (world_size * SHAPE[0], SHAPE[1]))))
        return [output]

    def all_to_all(place, dtype):
        outputs = [place(torch.zeros(SHAPE, dtype=dtype)) for _ in peers]
        dist.all_to_all(outputs, [place(rank_input(10 * rank + i, dtype)) for i in peers])
        return outputs

    def all_to_all_single(place, dtype):
        # Uneven splits: rank r sends i + 1 rows to rank i.
        output = place(torch.zeros(world_size * (rank + 1), SHAPE[1], dtype=dtype))
        rows = sum(i + 1 for i in peers)
        dist.all_to_all_single(output, place(rank_input(rank, dtype, (rows, SHAPE[1]))),
                               output_split_sizes=[rank + 1] * world_size, input_split_sizes=[i + 1 for i in peers])
        return [output]

    def gather(place, dtype):
        outputs = [place(torch.zeros(SHAPE, dtype=dtype)) for _ in peers] if rank == 0 else None
        dist.gather(place(rank_input(rank, dtype)), outputs, dst=0)
        return outputs or []

    def scatter(place, dtype):
        inputs = [place(rank_input(10 + i, dtype)) for i in peers] if rank == 0 else None
        output = place(torch.zeros(SHAPE, dtype=dtype))
        dist.scatter(output, inputs, src=0)
        return [output]

    def send_recv(place, dtype):
        if rank == 0:
            dist.send(place(rank_input(5, dtype)), dst=1)
            return []
        t = place(torch.zeros(SHAPE, dtype=dtype))
        dist.recv(t, src=0)
        return [t]

    def isend_irecv(place, dtype):
        t = place(rank_input(5, dtype) if rank == 0 else torch.zeros(SHAPE, dtype=dtype))
        work = dist.isend(t, dst=1) if rank == 0 else dist.irecv(t, src=0)
        work.wait()
        return [t]

    def batch_isend_irecv(place, dtype):
        received = place(torch.zeros(SHAPE, dtype=dtype))
        ops = [dist.P2POp(dist.isend, place(rank_input(rank, dtype)), (rank + 1) % world_size),
               dist.P2POp(dist.irecv, received, (rank - 1) % world_size)]
        for work in dist.batch_isend_irecv(ops):
            work.wait()
        return [received]

    return {
        "all_reduce_sum": all_reduce(op.SUM), "all_reduce_product": all_reduce(op.PRODUCT),
        "all_reduce_min": all_reduce(op.MIN), "all_reduce_max": all_reduce(op.MAX),
        "broadcast": broadcast, "reduce": reduce, "all_gather": all_gather,
        "all_gather_into_tensor": all_gather_into_tensor, "reduce_scatter": reduce_scatter,
        "reduce_scatter_tensor": reduce_scatter_tensor, "all_to_all": all_to_all,
        "all_to_all_single": all_to_all_single, "gather": gather, "scatter": scatter, "send_recv": send_recv,
        "isend_irecv": isend_irecv, "batch_isend_irecv": batch_isend_irecv,
    }


def outcome(fn, place, dtype):
    """The collective's results on the CPU, or the exception it raised."""
    try:
        return [t.cpu() for t in fn(place, dtype)]
    except Exception as e:  # noqa: BLE001  (compared with what CPU Gloo raises)
        return e


def assert_same_outcome(name, dtype, foo, cpu) -> str:
    if isinstance(cpu, Exception):
        assert isinstance(foo, Exception), f"{name} {dtype}: CPU Gloo raised {cpu!r}, foo returned {foo}"
        assert type(foo) is type(cpu), f"{name} {dtype}: foo raised {foo!r}, CPU Gloo {cpu!r}"
        return "error"
    assert not isinstance(foo, Exception), f"{name} {dtype}: foo raised {foo!r}, CPU Gloo did not"
    assert len(foo) == len(cpu), name
    for f, c in zip(foo, cpu):
        torch.testing.assert_close(f, c, rtol=0, atol=0, msg=f"{name} {dtype}")
    return "ok"


def collectives_worker(rank: int, world_size: int, names, dtypes, layouts=("contiguous", "strided")) -> dict:
    """Runs each named collective for each dtype on CPU tensors, then on foo tensors; returns {(name, dtype): "ok" or
    "error"} (errors only where CPU Gloo raised the same type of error)."""
    init(rank, world_size)
    table = collective_table(rank, world_size)
    device = f"foo:{torch.foo.current_device()}"
    outcomes = {}
    for name in names:
        for dtype in dtypes:
            cpu = outcome(table[name], Placement("cpu", strided=False), dtype)
            for layout in layouts:
                place = Placement(device, strided=layout == "strided")
                outcomes[(name, str(dtype), layout)] = assert_same_outcome(
                    f"{name} ({layout})", dtype, outcome(table[name], place, dtype), cpu)
                place.check_untouched()
    dist.barrier()
    return outcomes


def average_worker(rank: int, world_size: int) -> None:
    """ReduceOp.AVG (which Gloo lacks) equals CPU Gloo's SUM divided by the world size."""
    init(rank, world_size)
    avg, total = dist.ReduceOp.AVG, dist.ReduceOp.SUM
    device = f"foo:{torch.foo.current_device()}"
    shape = (2 * world_size, 3)
    cases = {  # name -> fn(input, reduce op) returning the tensor holding the result
        "all_reduce": lambda t, op: dist.all_reduce(t, op=op) or t,
        "reduce": lambda t, op: dist.reduce(t, dst=1, op=op) or t,
        "reduce_scatter_tensor": lambda t, op: dist.reduce_scatter_tensor(
            out := torch.zeros_like(t[:2]), t, op=op) or out,
    }
    for dtype in (torch.float32, torch.float64):
        for strided in (False, True):
            place = Placement(device, strided)
            for name, run in cases.items():
                expected = run(rank_input(rank, dtype, shape), total)
                got = run(place(rank_input(rank, dtype, shape)), avg)
                if name != "reduce" or rank == 1:  # reduce: only the destination has the result
                    torch.testing.assert_close(got.cpu(), expected / world_size,
                                               msg=f"{name} {dtype} strided={strided}")
            place.check_untouched()
    try:
        dist.all_reduce(torch.ones(3, dtype=torch.int64, device=device), op=avg)
    except RuntimeError as e:
        assert "AVG needs floating point" in str(e), e
    else:
        raise AssertionError("integer AVG on foo did not raise")
    dist.barrier()


def stream_order_worker(rank: int, world_size: int) -> None:
    """A collective starts after the work queued on the current stream; Work.wait() returns with results in place;
    async collectives return before the peer has even joined."""
    init(rank, world_size)
    device = torch.device("foo", torch.foo.current_device())
    # An asynchronous copy from pinned memory, queued behind a busy stream: the collective must see its values.
    source = torch.full((1000,), float(rank + 1)).pin_memory()
    t = torch.zeros(1000, device=device)
    torch.ops.foo.sleep(300_000)
    t.copy_(source, non_blocking=True)
    dist.all_reduce(t)
    torch.testing.assert_close(t.cpu(), torch.full((1000,), float(sum(range(1, world_size + 1)))))

    # On a side stream too: the collective orders itself after the stream that is current when it is issued.
    side = torch.foo.Stream()
    with torch.foo.stream(side):
        u = torch.zeros(1000, device=device)
        torch.ops.foo.sleep(300_000)
        u.copy_(source, non_blocking=True)
        dist.all_reduce(u)
    torch.foo.current_stream().wait_stream(side)  # as with NCCL: the side stream waits for the collective, not the host
    torch.testing.assert_close(u.cpu(), torch.full((1000,), float(sum(range(1, world_size + 1)))))

    # async_op: rank 0's collective is issued and still incomplete while rank 1 has not called it yet.
    store = dist.distributed_c10d._get_default_store()
    v = torch.full((8,), float(rank + 1), device=device)
    if rank == 0:
        work = dist.all_reduce(v, async_op=True)
        assert not work.is_completed()
        store.set("issued", "1")
        assert work.wait()
    else:
        store.wait(["issued"])
        dist.all_reduce(v, async_op=True).wait()
    torch.testing.assert_close(v.cpu(), torch.full((8,), float(sum(range(1, world_size + 1)))))
    # Work.wait() makes the current stream wait, not the host: rank 1 joins only after rank 0's wait() has returned,
    # and work queued after it on the stream sees the result.
    x = torch.full((8,), float(rank + 1), device=device)
    if rank == 0:
        work = dist.all_reduce(x, async_op=True)
        assert work.wait()
        assert not work.is_completed() and not torch.foo.current_stream().query()
        store.set("waited", "1")
        doubled = x * 2
    else:
        store.wait(["waited"])
        dist.all_reduce(x)
        doubled = x * 2
    torch.testing.assert_close(doubled.cpu(), torch.full((8,), 2.0 * sum(range(1, world_size + 1))))
    # get_future completes with the foo tensors themselves.
    w = torch.full((8,), float(rank), device=device)
    result = dist.all_reduce(w, async_op=True).get_future().wait()
    assert result[0].device == device and result[0].data_ptr() == w.data_ptr()
    torch.testing.assert_close(w.cpu(), torch.full((8,), float(sum(range(world_size)))))


def default_backend_worker(rank: int, world_size: int) -> str:
    """init_process_group() without a backend picks foo's backend on a foo machine; collectives leak nothing."""
    init(rank, world_size, backend=None)
    t = torch.full((4,), float(rank + 1), device="foo")
    dist.all_reduce(t)
    torch.testing.assert_close(t.cpu(), torch.full((4,), float(sum(range(1, world_size + 1)))))
    # Works, futures and aliases let go of the device memory once done (nothing keeps a collective's tensors).
    baseline = torch.foo.memory_allocated()
    for _ in range(10):
        u = torch.ones(1 << 16, device="foo")
        dist.all_reduce(u, async_op=True).wait()
        dist.all_reduce(u[::2], async_op=True).get_future().wait()
        del u
    # Gloo's worker thread drops its reference to a work (and so to the aliases) just after completing it.
    deadline = time.monotonic() + 20
    while torch.foo.memory_allocated() != baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert torch.foo.memory_allocated() == baseline, (torch.foo.memory_allocated(), baseline)
    return dist.get_backend_config(), dist.distributed_c10d._get_default_group()._get_backend(t.device).name()


def ddp_worker(rank: int, world_size: int, epochs: int, batch_size: int) -> list:
    """examples/train_ddp.py's DDP training; returns the final parameters as nested lists (tensors would travel
    through shared memory that dies with the process)."""
    import train_ddp

    init(rank, world_size)
    return [p.tolist() for p in train_ddp.train_ddp(rank, world_size, epochs, batch_size)]


def killed_peer_worker(rank: int, world_size: int) -> str:
    """Rank 1 dies (SIGKILL) while rank 0's stream waits for a collective; rank 0's next synchronization raises Gloo's
    error instead of hanging, and the process goes on working."""
    import signal

    init(rank, world_size, timeout=datetime.timedelta(seconds=5))
    store = dist.distributed_c10d._get_default_store()
    t = torch.ones(1 << 20, device="foo")
    if rank == 1:
        store.wait(["in_collective"])
        os.kill(os.getpid(), signal.SIGKILL)
    work = dist.all_reduce(t, async_op=True)
    assert work.wait()  # rank 1 has not joined: the stream waits, the host goes on
    store.set("in_collective", "1")
    try:
        torch.foo.synchronize()
    except RuntimeError as e:
        error = f"{type(e).__name__}: {e}"
    else:
        raise AssertionError("all_reduce with a dead peer completed")
    torch.foo.synchronize()  # reported once; the device works on
    assert (torch.ones(4, device="foo") * 2).sum().item() == 8
    return error


def mismatch_worker(rank: int, world_size: int) -> dict:
    """Under TORCH_DISTRIBUTED_DEBUG=DETAIL, mismatched shapes raise the wrapper's error on foo as on CPU tensors with
    Gloo (torch wraps plugin backends too; without DETAIL, Gloo aborts on CPU tensors while foo raises its own error:
    disagreement_worker). A bad peer rank raises at once on foo. A bad rank is not
    tried on CPU tensors: Gloo waits out the timeout on the store for the missing peer, and a process that did so could
    crash later in Gloo's teardown (seen once in CI, in the CPU half of this worker)."""
    os.environ["TORCH_DISTRIBUTED_DEBUG"] = "DETAIL"
    dist.set_debug_level_from_env()
    init(rank, world_size)
    errors = {}
    for device in ("cpu", f"foo:{torch.foo.current_device()}"):
        try:
            dist.all_reduce(torch.ones(4 + rank, device=device))
        except RuntimeError as e:
            errors[("shape", device.split(":")[0])] = str(e).split(":")[0]
    for bad_rank in (world_size + 3, -2):
        try:
            dist.send(torch.ones(4, device="foo"), dst=bad_rank)
        except ValueError as e:
            errors[("send", bad_rank)] = str(e)
        try:
            dist.recv(torch.ones(4, device="foo"), src=bad_rank)
        except ValueError as e:
            errors[("recv", bad_rank)] = str(e)
    dist.barrier()
    return errors


def disagreement_worker(rank: int, world_size: int) -> dict:
    """Ranks that call different collectives, or one collective on different shapes, dtypes or all_to_all splits, in
    the default debug mode (where Gloo on CPU tensors aborts the process): each gets foo's error naming what every
    rank called, and the group works on; a receive into a tensor too small for the message fails. Returns
    {case: error message}."""
    init(rank, world_size)
    device = torch.device("foo", torch.foo.current_device())
    cases = {
        "shape": lambda: dist.all_reduce(torch.ones(4 + rank, device=device)),
        "dtype": lambda: dist.broadcast(torch.ones(4, device=device, dtype=(torch.float32, torch.int32)[rank]), 0),
        "operation": lambda: (dist.all_reduce(torch.ones(4, device=device)) if rank == 0
                              else dist.broadcast(torch.ones(4, device=device), 0)),
        "gather size": lambda: dist.all_gather_into_tensor(torch.empty(2 * (3 + rank), device=device),
                                                           torch.ones(3 + rank, device=device)),
        "all_to_all splits": lambda: dist.all_to_all_single(torch.empty(3, device=device), torch.ones(3, device=device),
                                                            [1 + rank, 2 - rank], [1, 2]),
    }
    errors = {}
    for case, call in cases.items():
        try:
            call()
            torch.foo.synchronize()  # the error may come with the wait on the stream rather than the call
        except RuntimeError as e:
            errors[case] = str(e)
        t = torch.full((4,), float(rank + 1), device=device)
        dist.all_reduce(t)
        assert t.cpu().tolist() == [3.0] * 4, (case, t)
    # A burst of asynchronous calls (their signatures travel together): only the call that disagrees fails.
    tensors = [torch.ones(4 + (rank if i == 2 else 0), device=device) for i in range(5)]
    works = [dist.all_reduce(t, async_op=True) for t in tensors]
    outcomes = []
    for work, t in zip(works, tensors):
        try:
            work.wait()
            torch.foo.synchronize()
            outcomes.append(t.cpu().tolist())
        except RuntimeError as e:
            outcomes.append("disagree" if "the ranks disagree on collective" in str(e) else str(e))
    assert outcomes == [[2.0] * 4, [2.0] * 4, "disagree", [2.0] * 4, [2.0] * 4], outcomes
    # Point-to-point: a message larger than the receiving tensor (which Gloo aborts on) fails the receive only; one
    # that is smaller fills the start of it, as with Gloo.
    for source in (0, None):
        try:
            if rank == 0:
                dist.send(torch.ones(8, device=device), 1)
            else:
                dist.recv(torch.zeros(4, device=device), source)
            torch.foo.synchronize()
        except RuntimeError as e:
            errors[f"recv from {source}"] = str(e)
    received = torch.zeros(5, device=device)
    if rank == 0:
        dist.send(torch.arange(3.0, device=device), 1)
    else:
        assert dist.recv(received) == 0
    assert received.cpu().tolist() == ([0.0] * 5 if rank == 0 else [0.0, 1.0, 2.0, 0.0, 0.0]), received
    return errors


def fsdp_worker(rank: int, world_size: int, epochs: int, batch_size: int) -> list:
    """FSDP2 (fully_shard per layer and at the root) over a foo device mesh; returns the full final parameters (as
    nested lists)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    import train_ddp
    from train_mlp import make_model

    init(rank, world_size)
    device = torch.device("foo", torch.foo.current_device())
    mesh = init_device_mesh("foo", (world_size,))
    model = make_model().to(device)
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    train_ddp.train(model, device, epochs, batch_size, rank, world_size)
    return [p.full_tensor().cpu().tolist() for p in model.parameters()]


# ---- sharing foo tensors between processes (torch_foo/ipc.py) ----------------------------------------------------------

def ipc_views(base: torch.Tensor) -> dict:
    """Views of a [6, 8] tensor that exercise offsets and strides."""
    return {"whole": base, "offset": base[2:], "strided": base[:, 1::3], "transposed": base.t()[3:]}


def ipc_receiver(queue, replies) -> None:
    """Takes views through a queue, checks them against the CPU values sent along, negates them in place on the
    device (seen by the sender without a copy back), then lets go and reports."""
    import torch_foo  # noqa: F401

    views, expected = queue.get()
    for name, view in views.items():
        assert view.device == torch.device("foo:1"), view.device
        torch.testing.assert_close(view.cpu(), expected[name], msg=name)
    views["strided"].neg_()
    torch.foo.synchronize()
    del views, view
    replies.put("done")


def ipc_spawn_argument(tensor, replies) -> None:
    import torch_foo  # noqa: F401

    tensor.add_(100)
    torch.foo.synchronize()
    replies.put(tensor.cpu().tolist())


def ipc_receiver_that_dies(queue, replies) -> None:
    import signal

    import torch_foo  # noqa: F401

    tensor = queue.get()
    replies.put(tensor.sum().item())
    replies.close()
    replies.join_thread()  # flushed before the kill
    os.kill(os.getpid(), signal.SIGKILL)  # never lets go: the kernel closes its lease


def ipc_sender_that_exits(queue, acks) -> None:
    """Sends a tensor, waits until the receiver has it, and exits (its memory must outlive it where it was sent)."""
    import torch_foo  # noqa: F401

    tensor = torch.arange(1000, dtype=torch.float32, device="foo:0") * 2
    queue.put(tensor)
    acks.get(timeout=60)
