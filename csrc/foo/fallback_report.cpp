#include "foo/fallback_report.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace torch_foo {
namespace {

struct FallbackState {
  std::mutex mutex;
  std::unordered_map<std::string, int64_t> counts;
  std::unordered_set<std::string> warned;
  FallbackPolicy policy = FallbackPolicy::Allow;
};

FallbackState& state() {
  static FallbackState* instance = [] {
    auto* s = new FallbackState;
    if (const char* env = std::getenv("TORCH_FOO_FALLBACK")) {
      try {
        s->policy = parseFallbackPolicy(env);
      } catch (const c10::Error&) {
        TORCH_WARN("ignoring TORCH_FOO_FALLBACK=", env, ": expected allow, warn or error");
      }
    }
    return s;
  }();
  return *instance;
}

}  // namespace

void noteFallback(const std::string& op) {
  FallbackState& s = state();
  bool warn = false;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    TORCH_CHECK_NOT_IMPLEMENTED(s.policy != FallbackPolicy::Error, "The operator '", op,
                                "' has no native foo kernel and TORCH_FOO_FALLBACK=error forbids running it "
                                "through the CPU fallback.");
    s.counts[op] += 1;
    warn = s.policy == FallbackPolicy::Warn && s.warned.insert(op).second;
  }
  if (warn) TORCH_WARN("The operator '", op, "' has no native foo kernel: it runs through the CPU fallback.");
}

FallbackPolicy parseFallbackPolicy(const std::string& text) {
  if (text == "allow") return FallbackPolicy::Allow;
  if (text == "warn") return FallbackPolicy::Warn;
  if (text == "error") return FallbackPolicy::Error;
  TORCH_CHECK_VALUE(false, "unknown foo fallback policy '", text, "': expected allow, warn or error");
}

FallbackPolicy fallbackPolicy() {
  FallbackState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.policy;
}

void setFallbackPolicy(FallbackPolicy policy) {
  FallbackState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.policy = policy;
  s.warned.clear();
}

std::vector<std::pair<std::string, int64_t>> fallbackCounts() {
  FallbackState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return {s.counts.begin(), s.counts.end()};
}

void resetFallbackCounts() {
  FallbackState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.counts.clear();
}

}  // namespace torch_foo
