// The CPU fallback for aten ops without a native foo kernel, and its report.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace torch_foo {

// Runs an op's CPU kernel (CPU-specific or composite) in place on the foo tensors' device memory: arguments become
// aliases, results the kernel allocates are device memory already. The fallback and generic native kernels use it.
void runOnDevice(const c10::OperatorHandle& op, torch::jit::Stack* stack);

// The boxed fallback: counts the op, applies the policy, then runOnDevice.
void fooFallback(const c10::OperatorHandle& op, torch::jit::Stack* stack);

enum class FallbackPolicy { Allow, Warn, Error };

// Initially from TORCH_FOO_FALLBACK=allow|warn|error (default allow).
FallbackPolicy fallbackPolicy();
void setFallbackPolicy(FallbackPolicy policy);
FallbackPolicy parseFallbackPolicy(const std::string& text);  // raises on an unknown value

// {"aten::cumsum", count} for each op that fell back since start or the last reset.
std::vector<std::pair<std::string, int64_t>> fallbackCounts();
void resetFallbackCounts();

}  // namespace torch_foo
