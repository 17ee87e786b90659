// The CPU fallback's report and policy. They live in the state library, not beside the fallback in the kernels
// library, so that the counts and the policy a user set survive torch_foo.reload().
#pragma once

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

// Counts a fallback of the op ("aten::cumsum.out") and applies the policy: raises under Error, warns once per op
// under Warn.
void noteFallback(const std::string& op);

// {"aten::cumsum", count} for each op that fell back since start or the last reset.
std::vector<std::pair<std::string, int64_t>> fallbackCounts();
void resetFallbackCounts();

}  // namespace torch_foo
