// Where a small foo op's time goes: `a + b` on 16 floats split into its stages, each timed on its own in a C++ loop
// (no Python), beside the same op on CPU. `python benchmarks/bench_ops.py --stages` prints the table.
#include <ATen/ops/add.h>
#include <ATen/ops/add_cpu_dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <c10/core/CPUAllocator.h>
#include <torch/library.h>

#include <chrono>
#include <string>
#include <vector>

#include "foo/allocator.h"
#include "foo/kernel_scope.h"

namespace torch_foo {
namespace {

template <class F>
double nanosecondsPerCall(int64_t iterations, F&& body) {
  for (int64_t i = 0; i < iterations / 10 + 1; ++i) body();  // warm caches and the allocator's pools
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iterations; ++i) body();
  const std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / static_cast<double>(iterations);
}

// (stage names, nanoseconds per call); the stages after the two totals add up to the foo total.
std::tuple<std::vector<std::string>, std::vector<double>> smallOpStages(int64_t iterations) {
  TORCH_CHECK(iterations > 0, "iterations must be positive, got ", iterations);
  const at::Tensor cpu_a = at::ones({16}), cpu_b = at::ones({16});
  const at::Tensor foo_a = at::empty({16}, at::TensorOptions().device(kFoo, 0)).copy_(cpu_a);
  const at::Tensor foo_b = at::empty({16}, at::TensorOptions().device(kFoo, 0)).copy_(cpu_b);
  c10::Allocator* cpu_allocator = c10::GetCPUAllocator();

  const double cpu_op = nanosecondsPerCall(iterations, [&] { at::add(cpu_a, cpu_b); });
  const double cpu_kernel = nanosecondsPerCall(iterations, [&] { at::cpu::add(cpu_a, cpu_b); });
  const double foo_op = nanosecondsPerCall(iterations, [&] { at::add(foo_a, foo_b); });
  const double scope = nanosecondsPerCall(iterations, [&] { KernelScope s(0); });
  const double aliases = nanosecondsPerCall(iterations, [&] {
    KernelScope s(0);
    s.alias(foo_a);
    s.alias(foo_b);
  });
  const double kernel = nanosecondsPerCall(iterations, [&] {
    KernelScope s(0);
    at::cpu::add(*s.alias(foo_a), *s.alias(foo_b));
  });
  const double wrapped = nanosecondsPerCall(iterations, [&] {
    KernelScope s(0);
    s.toDevice(at::cpu::add(*s.alias(foo_a), *s.alias(foo_b)));
  });
  const double device_alloc = nanosecondsPerCall(iterations, [&] { allocateDeviceMemory(0, 64); });
  const double cpu_alloc = nanosecondsPerCall(iterations, [&] { cpu_allocator->allocate(64); });
  return {{"cpu: the whole op", "cpu: kernel (at::cpu::add)", "foo: the whole op",
           "foo: dispatch to the kernel (the rest)", "foo: kernel scope (device, stream check, allocation routing)",
           "foo: two input aliases", "foo: CPU kernel on the aliases (incl. allocation)", "foo: result to a foo tensor",
           "  of which in the kernel: device allocation + free, 64 B", "  (CPU allocation + free, 64 B, for comparison)"},
          {cpu_op, cpu_kernel, foo_op, foo_op - wrapped, scope, aliases - scope, kernel - aliases, wrapped - kernel,
           device_alloc, cpu_alloc}};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(foo, m) { m.def("small_op_stages(int iterations) -> (str[], float[])", &smallOpStages); }

}  // namespace torch_foo
