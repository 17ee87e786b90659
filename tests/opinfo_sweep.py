"""PyTorch's operator database (OpInfo op_db) on foo against CPU, with every op isolated in a worker process.

    python tests/opinfo_sweep.py [--ops add,mm,...] [--jobs 2] [--samples 3] [--exact]

For each OpInfo: each CPU-supported dtype of DTYPES, the first `samples` sample inputs, the function, method and
in-place variants; foo's outputs are compared with CPU's on the same inputs (values, dtype, the foo device of every
output tensor, raising where CPU raises); then a float32 backward pass compares the input gradients. Random ops run
with the same seed on both devices (foo's generator gives CPU's numbers). Ops run in worker processes, so an op that
crashes or hangs is reported by name and the sweep goes on with a new worker.

`--exact` compares the ops in EXACT_OPS bit for bit (they run CPU's own kernels on foo). tests/test_opinfo.py runs
the sweep and holds the exclusion list.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import select
import subprocess
import sys
import tempfile
import time
import traceback
from itertools import islice

DTYPE_NAMES = ["float32", "float64", "int64", "bool", "bfloat16", "complex64"]
OP_TIMEOUT_S = 120

# Ops foo runs with CPU's own kernels in reduced precision too (natively or through the fallback): bit-exact.
EXACT_OPS = {
    "nn.functional.layer_norm", "nn.functional.group_norm", "nn.functional.batch_norm", "addr", "add", "mul", "sub",
    "div", "mm", "addmm", "bmm", "matmul", "sum", "mean", "softmax", "log_softmax", "nn.functional.relu", "sigmoid",
    "tanh", "exp", "cumsum", "nn.functional.linear", "nn.functional.gelu", "nn.functional.silu",
}


# Ops whose results are uninitialised memory: only their shape, dtype and device are compared.
UNDEFINED_VALUES = {"empty", "empty_like", "empty_permuted", "empty_strided", "new_empty", "new_empty_strided"}


def op_key(op) -> str:
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


# ----------------------------------------------------------------------------------------------------- worker side


def _to_device(value, device):
    """A copy on `device` with the same sizes, strides and requires_grad (tensors inside containers too); device
    arguments naming cpu or foo name `device` instead."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            return value.to(device)
        with torch.no_grad():
            copy_ = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=device)
            copy_.copy_(value)
        return copy_.requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        converted = [_to_device(v, device) for v in value]
        return type(value)(converted) if not hasattr(value, "_fields") else type(value)(*converted)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, torch.device) and value.type in ("cpu", "foo"):
        return torch.device(device)
    if isinstance(value, str) and value in ("cpu", "foo", "foo:0"):
        return device
    return value


def _call(fn, sample, device):
    """(outputs, error message, the inputs) of fn on a copy of the sample on `device`, seeded; the inputs are
    [input, *args, kwargs]. Tensors that the sample keeps on the CPU (index lists, sections) stay there."""
    import torch

    def move(value):
        if isinstance(value, torch.Tensor) and value.device.type == "cpu":
            return _to_device(value, "cpu")  # kept on the CPU by the sample (indices, sections): a fresh copy
        return _to_device(value, device)

    args = [torch.utils._pytree.tree_map(move, v) for v in [sample.input, *sample.args]]
    kwargs = torch.utils._pytree.tree_map(move, dict(sample.kwargs))
    torch.manual_seed(1234)  # seeds every device's generator, foo's too
    try:
        return fn(*args, **kwargs), None, [*args, kwargs]
    except Exception as e:  # noqa: BLE001 (any error is compared with CPU's)
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", [*args, kwargs]


def _compare(foo, cpu, exact: bool | None, where: str) -> None:
    """Raises AssertionError naming `where` unless foo's result matches CPU's; exact=None compares no values."""
    import torch

    if isinstance(cpu, torch.Tensor):
        assert isinstance(foo, torch.Tensor), f"{where}: foo gave {type(foo).__name__}, CPU a tensor"
        assert foo.device.type == "foo", f"{where}: result on {foo.device}"
        assert foo.dtype == cpu.dtype, f"{where}: dtype {foo.dtype} vs CPU {cpu.dtype}"
        assert foo.shape == cpu.shape, f"{where}: shape {tuple(foo.shape)} vs CPU {tuple(cpu.shape)}"
        if exact is None:
            return
        if cpu.layout != torch.strided:
            foo, cpu = foo.to_dense(), cpu.to_dense()
        tolerance = dict(atol=0, rtol=0) if exact else {}
        try:
            torch.testing.assert_close(foo.detach().cpu(), cpu.detach(), equal_nan=True, **tolerance)
        except AssertionError as e:
            raise AssertionError(f"{where}: values differ: " + " ".join(str(e).split("\n")[1:3])) from None
    elif isinstance(cpu, (list, tuple)):
        assert isinstance(foo, (list, tuple)) and len(foo) == len(cpu), f"{where}: {type(foo).__name__} vs CPU"
        for i, (f, c) in enumerate(zip(foo, cpu)):
            _compare(f, c, exact, f"{where}[{i}]")
    elif isinstance(cpu, float) and cpu != cpu:
        assert foo != foo, f"{where}: {foo} vs CPU nan"
    else:
        assert foo == cpu, f"{where}: {foo!r} vs CPU {cpu!r}"


def _variants(op):
    yield "function", op.op
    if op.method_variant is not None:
        yield "method", op.method_variant
    if op.inplace_variant is not None:
        yield "inplace", op.inplace_variant


def _grads(fn, sample, device):
    """Gradients of sum(output * cotangent) with respect to the sample's float inputs that require grad."""
    import torch

    out, error, args = _call(fn, sample, device)
    if error is not None:
        return None, error
    leaves = [t for t in torch.utils._pytree.tree_leaves(args) if isinstance(t, torch.Tensor) and t.requires_grad
              and t.is_leaf]
    outs = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor) and t.requires_grad]
    if not leaves or not outs:
        return [], None
    torch.manual_seed(99)
    cotangents = [torch.randn(t.shape, dtype=t.dtype).to(device) for t in outs]
    try:
        grads = torch.autograd.grad(outs, leaves, cotangents, allow_unused=True)
    except Exception as e:  # noqa: BLE001
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return list(grads), None


def check_op(op, samples: int, exact: bool, counts: collections.Counter) -> list[str]:
    """Problems of one OpInfo on foo ('<dtype> <variant> #<sample>: what'); empty if it matches CPU. `counts` gets
    how many results were compared ("compared", "gradients compared") and how many calls raised on both devices."""
    import torch

    problems = []
    cpu_dtypes = op.supported_dtypes("cpu")
    for dtype in [getattr(torch, name) for name in DTYPE_NAMES]:
        if dtype not in cpu_dtypes:
            continue
        bit_exact = None if op.name in UNDEFINED_VALUES else exact and op.name in EXACT_OPS
        try:
            inputs = list(islice(op.sample_inputs("foo", dtype, requires_grad=False), samples))
        except Exception as e:  # noqa: BLE001
            problems.append(f"{str(dtype)[6:]}: making sample inputs on foo raised {type(e).__name__}: {e}")
            continue
        for variant, fn in _variants(op):
            for index, sample in enumerate(inputs):
                where = f"{str(dtype)[6:]} {variant} #{index}"
                cpu_out, cpu_error, _ = _call(fn, sample, "cpu")
                foo_out, foo_error, _ = _call(fn, sample, "foo")
                if cpu_error or foo_error:
                    counts["raised on both"] += bool(cpu_error and foo_error)
                    if cpu_error is None:
                        problems.append(f"{where}: foo raised {foo_error}")
                    elif foo_error is None:
                        problems.append(f"{where}: CPU raised {cpu_error}, foo did not")
                    continue
                counts["compared"] += 1
                try:
                    _compare(foo_out, cpu_out, bit_exact, where)
                except AssertionError as e:
                    problems.append(str(e))
    if op.supports_autograd and torch.float32 in op.supported_backward_dtypes("cpu"):
        try:
            inputs = list(islice(op.sample_inputs("foo", torch.float32, requires_grad=True), max(1, samples - 1)))
        except Exception as e:  # noqa: BLE001
            problems.append(f"float32 backward: making sample inputs on foo raised {type(e).__name__}: {e}")
            inputs = []
        for index, sample in enumerate(inputs):
            where = f"float32 backward #{index}"
            cpu_grads, cpu_error = _grads(op.op, sample, "cpu")
            foo_grads, foo_error = _grads(op.op, sample, "foo")
            if cpu_error is None and foo_error is not None:
                problems.append(f"{where}: foo raised {foo_error}")
            elif cpu_error is None:
                counts["gradients compared"] += 1
                try:
                    _compare([g for g in foo_grads], [g for g in cpu_grads], False, where)
                except AssertionError as e:
                    problems.append(str(e))
    return problems


def worker(samples: int, exact: bool) -> None:
    """Reads op keys from stdin, answers one JSON line each: {"op": key, "problems": [...], "counts": {...}}."""
    import warnings

    warnings.simplefilter("ignore")
    import torch  # noqa: F401
    import torch_foo  # noqa: F401
    from torch.testing._internal.common_methods_invocations import op_db

    ops = {op_key(op): op for op in op_db}
    out = sys.stdout
    sys.stdout = sys.stderr  # ops that print must not corrupt the protocol
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    crash_on = os.environ.get("TORCH_FOO_SWEEP_CRASH_ON")  # lets the sweep's own test see a worker die
    for line in sys.stdin:
        key = line.strip()
        if key == crash_on:
            os.abort()
        counts = collections.Counter()
        try:
            problems = check_op(ops[key], samples, exact, counts)
        except Exception:  # noqa: BLE001 (a bug in the harness for one op must not end the sweep)
            problems = ["sweep error: " + traceback.format_exc().splitlines()[-1]]
        out.write(json.dumps({"op": key, "problems": problems, "counts": counts}) + "\n")
        out.flush()


# ----------------------------------------------------------------------------------------------------- parent side


class _Worker:
    def __init__(self, samples: int, exact: bool):
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", "--samples", str(samples)]
            + (["--exact"] if exact else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env,
        )
        self.op = None
        self.started = 0.0
        self.ready = False

    def send(self, key: str) -> None:
        self.op, self.started = key, time.monotonic()
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        self.stderr.seek(0)
        lines = [line for line in self.stderr.read().decode(errors="replace").splitlines() if line.strip()]
        return " | ".join(lines[-3:])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()


def sweep(keys: list[str], jobs: int = 2, samples: int = 3, exact: bool = False,
          startup_timeout: float = 300) -> tuple[dict[str, list[str]], collections.Counter]:
    """({op key: problems} for every key, counts of what was compared); a crash or hang is a problem of the op that
    was running."""
    results: dict[str, list[str]] = {}
    counts = collections.Counter()
    pending = list(reversed(keys))
    workers = [_Worker(samples, exact) for _ in range(min(jobs, len(keys)))]
    started = time.monotonic()
    while workers:
        by_fd = {w.proc.stdout.fileno(): w for w in workers}
        readable, _, _ = select.select(list(by_fd), [], [], 1.0)
        for fd in readable:
            w = by_fd[fd]
            line = w.proc.stdout.readline()
            if not line:  # the worker died
                code = w.proc.wait()
                if w.op is None:
                    raise RuntimeError(f"sweep worker failed to start (exit {code}): {w.stderr_tail()}")
                results[w.op] = [f"crashed the process (exit status {code}): {w.stderr_tail()}"]
                w.kill()
                workers.remove(w)
                if pending:
                    workers.append(_Worker(samples, exact))
                continue
            answer = json.loads(line)
            if "op" in answer:
                results[answer["op"]] = answer["problems"]
                counts.update(answer["counts"])
                w.op = None
            w.ready = True
            if pending:
                w.send(pending.pop())
            else:
                w.kill()
                workers.remove(w)
        now = time.monotonic()
        for w in list(workers):
            if w.op is not None and now - w.started > OP_TIMEOUT_S:
                results[w.op] = [f"hung: no answer in {OP_TIMEOUT_S} s"]
                w.kill()
                workers.remove(w)
                if pending:
                    workers.append(_Worker(samples, exact))
            elif not w.ready and now - started > startup_timeout:
                raise RuntimeError(f"sweep worker did not start in {startup_timeout} s: {w.stderr_tail()}")
    return results, counts


def all_op_keys() -> list[str]:
    from torch.testing._internal.common_methods_invocations import op_db

    return [op_key(op) for op in op_db]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ops", help="comma-separated op keys (default: all of op_db)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--exact", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.samples, args.exact)
        return 0
    keys = args.ops.split(",") if args.ops else all_op_keys()
    started = time.monotonic()
    results, counts = sweep(keys, args.jobs, args.samples, args.exact)
    failed = {k: v for k, v in sorted(results.items()) if v}
    for key, problems in failed.items():
        print(f"{key}:")
        for p in problems[:5]:
            print(f"    {p}")
    print(f"{len(results) - len(failed)} of {len(results)} ops match CPU ({time.monotonic() - started:.0f} s); "
          + ", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
