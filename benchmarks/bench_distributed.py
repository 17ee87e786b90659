"""Time collectives and DDP training steps on foo against the same on CPU tensors with plain Gloo, on 2 processes.

    python benchmarks/bench_distributed.py [--repeat 9] [--steps 10] [--json PATH]

Measurements: all_reduce of a 1 MB and a 64 MB float32 tensor, and one DDP training step of an MLP (batch 256 split
over the ranks, width 1024). Both processes run the same schedule in lockstep: per measurement, --repeat samples per
device, alternating which device goes first so that drifting load on a shared machine hits both alike; foo is
synchronized before the clock starts and before it stops. Rank 0 reports medians and foo / CPU ratios against the
goals (all_reduce <= 1.10x, DDP step <= 1.15x).
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import torch_foo  # noqa: F401

GOALS = {"all_reduce": 1.10, "ddp step": 1.15}
WORLD_SIZE = 2


def all_reduce_op(megabytes: int):
    def make(device):
        t = torch.ones(megabytes * (1 << 20) // 4, device=device)
        return lambda: dist.all_reduce(t)
    return make


def ddp_step_op(batch: int, width: int):
    def make(device):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 10)).to(device)
        ddp = DistributedDataParallel(model, device_ids=[torch.device(device).index] if device != "cpu" else None)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
        x = torch.randn(batch // WORLD_SIZE, width).to(device)
        y = torch.randint(0, 10, (batch // WORLD_SIZE,)).to(device)

        def step():
            optimizer.zero_grad()
            F.cross_entropy(ddp(x), y).backward()
            optimizer.step()
        return step
    return make


def seconds_per_call(op, device: str, calls: int) -> float:
    sync = torch.foo.synchronize if device != "cpu" else (lambda: None)
    dist.barrier()
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        op()
    sync()
    return (time.perf_counter() - start) / calls


def rank_main(rank: int, args, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(args.threads)
    torch.foo.set_device(rank)
    dist.init_process_group("cpu:gloo,foo:foo", rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=120))
    cases = [("all_reduce 1 MB", "all_reduce", all_reduce_op(1), 20),
             ("all_reduce 64 MB", "all_reduce", all_reduce_op(64), 2),
             ("ddp step (batch 256, width 1024)", "ddp step", ddp_step_op(256, 1024), args.steps)]
    rows = []
    for name, group, make, calls in cases:
        ops = {"foo": make(f"foo:{rank}"), "cpu": make("cpu")}
        for device, op in ops.items():
            seconds_per_call(op, device, 1)  # warm-up
        samples = {"foo": [], "cpu": []}
        for i in range(args.repeat):
            for device in (("foo", "cpu") if i % 2 == 0 else ("cpu", "foo")):
                samples[device].append(seconds_per_call(ops[device], device, calls))
        foo, cpu = statistics.median(samples["foo"]), statistics.median(samples["cpu"])
        rows.append({"name": name, "foo_seconds": foo, "cpu_seconds": cpu, "ratio": foo / cpu, "goal": GOALS[group]})
    dist.destroy_process_group()
    if rank == 0:
        results.put(rows)


def format_seconds(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} µs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="samples per device and measurement (default 9)")
    parser.add_argument("--steps", type=int, default=10, help="DDP steps per sample (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON")
    args = parser.parse_args()
    from torch.distributed.elastic.utils.distributed import get_free_port

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = get_free_port()
    procs = [ctx.Process(target=rank_main, args=(rank, args, port, results)) for rank in range(WORLD_SIZE)]
    for p in procs:
        p.start()
    try:
        rows = results.get(timeout=1800)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    print("| measurement | foo | CPU | ratio | goal |\n| --- | --- | --- | --- | --- |")
    for row in rows:
        verdict = "✓" if row["ratio"] <= row["goal"] else "✗"
        print(f"| {row['name']} | {format_seconds(row['foo_seconds'])} | {format_seconds(row['cpu_seconds'])} | "
              f"{row['ratio']:.2f}x | <= {row['goal']:.2f}x {verdict} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0 if all(p.exitcode == 0 for p in procs) else 1


if __name__ == "__main__":
    sys.exit(main())
