// The CPU fallback for aten ops without a native foo kernel (its report: foo/fallback_report.h).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

namespace torch_foo {

// Runs an op's CPU kernel (CPU-specific or composite) in place on the foo tensors' device memory: arguments become
// aliases, results the kernel allocates are device memory already. The fallback and generic native kernels use it.
void runOnDevice(const c10::OperatorHandle& op, torch::jit::Stack* stack);

// The boxed fallback: counts the op, applies the policy, then runOnDevice.
void fooFallback(const c10::OperatorHandle& op, torch::jit::Stack* stack);

}  // namespace torch_foo
