"""A first tour of the foo device: tensors on both devices, copies, native ops, a CPU-fallback op and a custom op.

    python examples/quickstart.py

Every result is checked against the same computation on the CPU; the script exits 0 when all of them match.
"""
import torch

import torch_foo


def section(title: str) -> None:
    print(f"\n== {title}")


def how_it_ran() -> str:
    """'native' or 'CPU fallback (ops)', from the fallback counters since the last call."""
    ran_through_fallback = torch_foo.fallback_stats()
    torch_foo.reset_fallback_stats()
    return f"CPU fallback ({', '.join(ran_through_fallback)})" if ran_through_fallback else "native"


def check(op_name: str, foo_result: torch.Tensor, cpu_result: torch.Tensor) -> None:
    torch.testing.assert_close(foo_result.cpu(), cpu_result)
    print(f"  {op_name:<28} on {str(foo_result.device):<6} matches CPU  [{how_it_ran()}]")


def main() -> None:
    section("devices")
    print(f"  torch {torch.__version__}, backend library {torch_foo.library_path.name}")
    print(f"  foo available: {torch.foo.is_available()}, device count: {torch.foo.device_count()}, "
          f"current device: foo:{torch.foo.current_device()}")

    section("moving data: cpu -> foo:0 -> foo:1 -> cpu")
    host = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    on_foo0 = host.to("foo")  # "foo" is the current device, foo:0
    on_foo1 = on_foo0.to("foo:1")
    back = on_foo1.cpu()
    print(f"  {host.device} -> {on_foo0.device} -> {on_foo1.device} -> {back.device}")
    torch.testing.assert_close(back, host)
    print("  round trip is exact")
    with torch.foo.device(1):
        made_on_foo1 = torch.ones(2, 2, device="foo")
    print(f"  torch.ones(..., device='foo') inside torch.foo.device(1) lives on {made_on_foo1.device}")

    section("native ops (foo kernels)")
    torch.manual_seed(0)
    a_cpu, b_cpu = torch.randn(4, 4), torch.randn(4, 4)
    a, b = a_cpu.to("foo"), b_cpu.to("foo")
    torch_foo.reset_fallback_stats()
    check("add", a + b, a_cpu + b_cpu)
    check("mul", a * b, a_cpu * b_cpu)
    check("relu", torch.relu(a), torch.relu(a_cpu))
    check("sum", a.sum(dim=1), a_cpu.sum(dim=1))
    check("mm", a @ b, a_cpu @ b_cpu)
    check("softmax", torch.softmax(a, dim=1), torch.softmax(a_cpu, dim=1))
    a1, b1 = a.to("foo:1"), b.to("foo:1")
    check("mm on the second device", a1 @ b1, a_cpu @ b_cpu)

    section("an op without a foo kernel runs through the CPU fallback (on device memory, no copies)")
    check("cumsum", torch.cumsum(a, dim=0), torch.cumsum(a_cpu, dim=0))
    check("erf", torch.erf(a), torch.erf(a_cpu))

    section("custom ops (torch_foo.ops, also torch.ops.foo.*)")
    check("mymuladd(a, b, 0.5)", torch_foo.ops.mymuladd(a, b, 0.5), a_cpu * b_cpu + 0.5)
    check("mymul(a, b)", torch_foo.ops.mymul(a, b), a_cpu * b_cpu)
    out = torch.empty_like(a)
    torch_foo.ops.myadd_out(a, b, out)
    check("myadd_out(a, b, out)", out, a_cpu + b_cpu)

    section("fallback report: torch_foo.fallback_stats() over a few ops")
    torch_foo.reset_fallback_stats()
    torch.cumsum(a, dim=0)
    torch.erf(a)
    torch.erf(b)
    (a + b).relu()
    for op_name, count in torch_foo.fallback_stats().items():
        print(f"  {op_name:<28} {count} call(s) through the CPU fallback")

    section("memory")
    torch.foo.synchronize()
    for device in range(torch.foo.device_count()):
        print(f"  foo:{device}: {torch.foo.memory_allocated(device)} bytes allocated "
              f"(peak {torch.foo.max_memory_allocated(device)})")

    print("\nquickstart: all checks passed")


if __name__ == "__main__":
    main()
