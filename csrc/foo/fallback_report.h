// The CPU fallback's report and policy. They live in the state library, not beside the fallback in the kernels
// library, so that the counts and the policy a user set survive torch_foo.reload().
#pragma once

#include <ATen/core/operator_name.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace torch_foo {

enum class FallbackPolicy { Allow, Warn, Error };

// Initially from TORCH_FOO_FALLBACK=allow|warn|error (default allow).
FallbackPolicy fallbackPolicy();
void setFallbackPolicy(FallbackPolicy policy);
FallbackPolicy parseFallbackPolicy(const std::string& text);  // raises on an unknown value

// Counts a fallback of the op and applies the policy: raises under Error, warns once per op under Warn. Takes the
// dispatcher's name object, not a string: this runs on every fallback call, and building "aten::cumsum.out" and
// hashing it would cost a fair part of a small op.
void noteFallback(const c10::OperatorName& op);

// {"aten::cumsum", count} for each op that fell back since start or the last reset.
std::vector<std::pair<std::string, int64_t>> fallbackCounts();
void resetFallbackCounts();

}  // namespace torch_foo
