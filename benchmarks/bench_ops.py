"""Time ops on foo against the same ops on CPU, interleaved, and compare with the spec's goals.

    python benchmarks/bench_ops.py [--quick] [--repeat N] [--json PATH]

Measurements: small ops (add, mul, relu, sum on 16 elements, mm on 4x4), where per-call overhead dominates; the same
ops on large inputs (16M elements, mm 2048x2048), where the kernels dominate; a large op without a foo kernel
(cumsum on 16M floats, which runs through the CPU fallback: the report confirms it from torch_foo.fallback_stats());
and one training step of an MLP.

Each measurement builds its inputs once per device from the same CPU data, warms up both, then takes --repeat samples
of each device, alternating which goes first so that drifting load on a shared machine hits both alike. A sample
times enough back-to-back calls to last --sample-time; foo is synchronized (torch.foo.synchronize()) before the clock
starts and before it stops. Reported figures are medians of the per-call times.
"""
import argparse
import gc
import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

import torch_foo

# The spec's goals for foo time / CPU time, by measurement group.
GOALS = {"small": 1.3, "large elementwise": 1.05, "large fallback": 2.0}
ELEMENTWISE = ("add", "mul", "relu")


@dataclass
class Sizes:
    small_elements: int = 16
    small_mm: int = 4
    large_elements: int = 16 * 1024 * 1024
    large_mm: int = 2048
    mlp_batch: int = 256
    mlp_width: int = 1024


QUICK_SIZES = Sizes(large_elements=1024 * 1024, large_mm=512, mlp_batch=64, mlp_width=256)


@dataclass
class Result:
    name: str
    group: str
    foo_seconds: float
    cpu_seconds: float
    goal: float | None
    calls_per_sample: int
    fallback_ops: dict[str, int] = field(default_factory=dict)  # foo ops that ran through the CPU fallback

    @property
    def ratio(self) -> float:
        return self.foo_seconds / self.cpu_seconds

    @property
    def meets_goal(self) -> bool | None:
        return None if self.goal is None else self.ratio <= self.goal


# A benchmark case: given a device, allocates its inputs there and returns the op to time.
OpFactory = Callable[[str], Callable[[], object]]


def op_on(device: str, op: Callable, *cpu_inputs: torch.Tensor) -> Callable[[], object]:
    inputs = [t.to(device) for t in cpu_inputs]
    return lambda: op(*inputs)


def elementwise_cases(prefix: str, elements: int, mm_size: int, group: str) -> list[tuple[str, str, OpFactory]]:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(elements, generator=generator), torch.randn(elements, generator=generator)
    m1, m2 = (torch.randn(mm_size, mm_size, generator=generator) for _ in range(2))
    return [
        (f"{prefix} add ({elements:,})", group, lambda d: op_on(d, torch.add, a, b)),
        (f"{prefix} mul ({elements:,})", group, lambda d: op_on(d, torch.mul, a, b)),
        (f"{prefix} relu ({elements:,})", group, lambda d: op_on(d, torch.relu, a)),
        (f"{prefix} sum ({elements:,})", group, lambda d: op_on(d, torch.sum, a)),
        (f"{prefix} mm ({mm_size}x{mm_size})", group, lambda d: op_on(d, torch.mm, m1, m2)),
    ]


def mlp_training_step(batch: int, width: int) -> OpFactory:
    def factory(device: str) -> Callable[[], object]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(width, width), torch.nn.ReLU(),
            torch.nn.Linear(width, width), torch.nn.ReLU(),
            torch.nn.Linear(width, 10),
        ).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        features = torch.randn(batch, width).to(device)
        labels = (torch.arange(batch) % 10).to(device)

        def step():
            optimizer.zero_grad()
            F.cross_entropy(model(features), labels).backward()
            optimizer.step()

        return step

    return factory


def all_cases(sizes: Sizes) -> list[tuple[str, str, OpFactory]]:
    large_input = torch.randn(sizes.large_elements, generator=torch.Generator().manual_seed(1))
    return [
        *elementwise_cases("small", sizes.small_elements, sizes.small_mm, "small"),
        *elementwise_cases("large", sizes.large_elements, sizes.large_mm, "large"),
        (f"large cumsum ({sizes.large_elements:,})", "large fallback",
         lambda d: op_on(d, lambda x: torch.cumsum(x, 0), large_input)),
        (f"MLP training step (batch {sizes.mlp_batch}, width {sizes.mlp_width})", "training",
         mlp_training_step(sizes.mlp_batch, sizes.mlp_width)),
    ]


def goal_for(name: str, group: str) -> float | None:
    if group == "large":
        return GOALS["large elementwise"] if name.split()[1] in ELEMENTWISE else None
    return GOALS.get(group)


def synchronizer(device: str) -> Callable[[], None]:
    return torch.foo.synchronize if device.startswith("foo") else (lambda: None)


def seconds_per_call(op: Callable[[], object], sync: Callable[[], None], calls: int) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        op()
    sync()
    return (time.perf_counter() - start) / calls


def measure(name: str, group: str, factory: OpFactory, repeat: int, sample_time: float) -> Result:
    ops = {device: (factory(device), synchronizer(device)) for device in ("foo", "cpu")}
    for op, sync in ops.values():  # warm-up: allocator caches, lazy initialisation, thread pools
        seconds_per_call(op, sync, 2)
    calls = max(1, math.ceil(sample_time / seconds_per_call(*ops["cpu"], 1)))

    torch_foo.reset_fallback_stats()
    seconds_per_call(*ops["foo"], 1)
    fallback_ops = torch_foo.fallback_stats()

    samples = {"foo": [], "cpu": []}
    gc.disable()  # a collection inside one sample would penalise whichever device it happens to hit
    try:
        for i in range(repeat):
            for device in ("foo", "cpu") if i % 2 == 0 else ("cpu", "foo"):
                samples[device].append(seconds_per_call(*ops[device], calls))
    finally:
        gc.enable()
    return Result(name, group, statistics.median(samples["foo"]), statistics.median(samples["cpu"]),
                  goal_for(name, group), calls, fallback_ops)


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:7.2f} {unit}"
    return f"{seconds / 1e-9:7.0f} ns"


def describe(result: Result) -> str:
    goal = "" if result.goal is None else f"goal <= {result.goal:.2f}x  {'ok' if result.meets_goal else 'MISSED'}"
    line = (f"{result.name:<44} {format_seconds(result.foo_seconds)} {format_seconds(result.cpu_seconds)} "
            f"{result.ratio:7.2f}x  {goal}")
    if result.group == "large fallback":
        line += f"  [{'falls back: ' + ', '.join(result.fallback_ops) if result.fallback_ops else 'NOT a fallback'}]"
    elif result.fallback_ops:
        line += f"  [fallback: {', '.join(result.fallback_ops)}]"
    return line


def machine_info() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="large inputs of 1M elements and mm 512x512, fewer repetitions (a smoke run)")
    parser.add_argument("--repeat", type=int, help="samples per device and measurement (default 11, --quick 5)")
    parser.add_argument("--sample-time", type=float, help="seconds one sample lasts at least (default 0.05)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON")
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else Sizes()
    repeat = args.repeat or (5 if args.quick else 11)
    sample_time = args.sample_time or (0.02 if args.quick else 0.05)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {repeat} samples per device")
    print(f"{'measurement':<44} {'foo':>10} {'cpu':>10} {'foo/cpu':>8}")
    results = []
    for name, group, factory in all_cases(sizes):
        results.append(measure(name, group, factory, repeat, sample_time))
        print(describe(results[-1]), flush=True)

    missed = [r.name for r in results if r.meets_goal is False]
    print(f"goals missed: {', '.join(missed)}" if missed else "all goals met")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({
                "machine": machine_info(),
                "sizes": asdict(sizes),
                "repeat": repeat,
                "goals": GOALS,
                "results": [{**asdict(r), "ratio": r.ratio, "meets_goal": r.meets_goal} for r in results],
            }, file, indent=1)


if __name__ == "__main__":
    main()
