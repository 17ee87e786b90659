"""Time torch.compile (Inductor) on foo against compiled CPU, and the profiler's overhead on foo.

    python benchmarks/bench_compile.py [--quick] [--repeat N] [--threads N]

Measurements, each a median of interleaved samples as in bench_ops.py:
- an MLP training step and a transformer block's forward and backward, compiled on foo and on CPU, and eager on foo
  (goals: compiled foo / compiled CPU <= 1.10x; compiled foo no slower than eager foo);
- the time of the first (compiling) call of each on foo and on CPU, each with empty Inductor caches (ratio printed);
- the eager MLP training step on foo inside torch.profiler.profile(activities=[CPU, PrivateUse1], profile_memory=True)
  against the same step unprofiled (goal <= 1.5x); the profiler's start and stop are outside the timed region.
"""
import argparse
import gc
import os
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import torch_foo  # noqa: F401
from bench_ops import format_seconds, mlp_training_step, seconds_per_call, synchronizer

COMPILED_GOAL = 1.10  # compiled foo / compiled CPU
PROFILED_GOAL = 1.5  # profiled / unprofiled step


def transformer_step(device: str, batch: int, width: int, compiled: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    block = torch.nn.TransformerEncoderLayer(width, 8, 4 * width, dropout=0.0, activation="gelu",
                                             batch_first=True).to(device)
    forward = torch.compile(block) if compiled else block
    tokens = torch.randn(batch, 64, width).to(device)

    def step():
        forward(tokens).sum().backward()

    return step


def interleaved_medians(ops: list[Callable[[int], float]], repeat: int) -> list[float]:
    """Medians of `repeat` samples of each op (seconds per call), the order of the ops rotating between samples."""
    samples = [[] for _ in ops]
    gc.disable()  # a collection inside one sample would penalise whichever op it happens to hit
    try:
        for i in range(repeat):
            for k in range(len(ops)):
                j = (k + i) % len(ops)
                samples[j].append(ops[j]())
    finally:
        gc.enable()
    return [statistics.median(s) for s in samples]


def sampler(step: Callable[[], None], device: str, calls: int, profiled: bool = False) -> Callable[[], float]:
    """A sample of `calls` steps; profiled: inside a profiler session whose start and stop are not timed."""
    sync = synchronizer(device)
    seconds_per_call(step, sync, 2)  # warm-up: compilation, allocator caches, thread pools

    def sample() -> float:
        if not profiled:
            return seconds_per_call(step, sync, calls)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.PrivateUse1], profile_memory=True):
            return seconds_per_call(step, sync, calls)

    return sample


def compile_seconds(make: Callable[[str, bool], Callable[[], None]], device: str) -> float:
    """The first call of the compiled step: tracing and compiling with empty Inductor caches, then running."""
    from torch._inductor.utils import fresh_cache

    torch._dynamo.reset()
    with fresh_cache():
        step = make(device, True)
        sync = synchronizer(device)
        sync()
        start = time.perf_counter()
        step()
        sync()
        return time.perf_counter() - start


def row(name: str, foo: float, reference: float, reference_name: str, goal: float | None) -> None:
    ratio = foo / reference
    verdict = "" if goal is None else f"goal <= {goal:.2f}x  {'ok' if ratio <= goal else 'MISSED'}"
    print(f"{name:<64} {format_seconds(foo)} vs {format_seconds(reference)} {reference_name:<13} {ratio:6.2f}x  "
          f"{verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models, few samples (a smoke run)")
    parser.add_argument("--repeat", type=int, help="samples per measurement (default 9, --quick 3)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeat = args.repeat or (3 if args.quick else 9)
    sample_time = 0.05 if args.quick else 0.2
    mlp_sizes = (64, 256) if args.quick else (256, 1024)
    block_sizes = (4, 64) if args.quick else (8, 256)
    models = {
        f"MLP training step (batch {mlp_sizes[0]}, width {mlp_sizes[1]})":
            lambda device, compiled: mlp_training_step(*mlp_sizes, compiled)(device),
        f"transformer block fwd+bwd (batch {block_sizes[0]}, 64 tokens, width {block_sizes[1]})":
            lambda device, compiled: transformer_step(device, *block_sizes, compiled),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}; "
          f"medians of {repeat} samples")
    for device in ("foo", "cpu"):  # Inductor's one-time start-up (imports, compile workers) is no part of a compile
        torch.compile(lambda x: x.relu() + 1)(torch.ones(8, device=device))
    for name, make in models.items():
        foo_compile, cpu_compile = compile_seconds(make, "foo"), compile_seconds(make, "cpu")
        torch._dynamo.reset()
        compiled_foo, compiled_cpu, eager_foo = make("foo", True), make("cpu", True), make("foo", False)
        seconds_per_call(compiled_cpu, lambda: None, 2)
        calls = max(1, round(sample_time / seconds_per_call(compiled_cpu, lambda: None, 1)))
        foo_time, cpu_time, eager_time = interleaved_medians(
            [sampler(compiled_foo, "foo", calls), sampler(compiled_cpu, "cpu", calls), sampler(eager_foo, "foo", calls)],
            repeat)
        row(f"{name}: compiled", foo_time, cpu_time, "compiled CPU", COMPILED_GOAL)
        row(f"{name}: compiled foo vs eager foo", foo_time, eager_time, "eager foo", 1.0)
        row(f"{name}: first call (compiles)", foo_compile, cpu_compile, "CPU", None)

    name, make = next(iter(models.items()))
    step = make("foo", False)
    calls = max(1, round(sample_time / seconds_per_call(step, synchronizer("foo"), 1)))
    profiled_time, plain_time = interleaved_medians(
        [sampler(step, "foo", calls, profiled=True), sampler(step, "foo", calls)], repeat)
    row(f"{name}: profiled (eager foo)", profiled_time, plain_time, "unprofiled", PROFILED_GOAL)


if __name__ == "__main__":
    main()
