#include "foo/fallback_report.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace torch_foo {
namespace {

struct OpCount {
  c10::OperatorName name{"", ""};  // the key's name when counted: a key may be reused by another op after a deregistration
  int64_t count = 0;
};

struct FallbackState {
  std::mutex mutex;
  // By the address of the dispatcher's name object, which lives as long as the op is registered.
  std::unordered_map<const c10::OperatorName*, OpCount> counts;
  std::map<std::string, int64_t> deregistered_counts;  // ops whose key another op took over
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

void noteFallback(const c10::OperatorName& op) {
  FallbackState& s = state();
  bool warn = false;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    TORCH_CHECK_NOT_IMPLEMENTED(s.policy != FallbackPolicy::Error, "The operator '", op,
                                "' has no native foo kernel and TORCH_FOO_FALLBACK=error forbids running it "
                                "through the CPU fallback.");
    OpCount& entry = s.counts[&op];
    if (entry.name != op) {
      if (entry.count > 0) s.deregistered_counts[c10::toString(entry.name)] += entry.count;
      entry = {op, 0};
    }
    entry.count += 1;
    warn = s.policy == FallbackPolicy::Warn && s.warned.insert(c10::toString(op)).second;
  }
  if (warn) {
    TORCH_WARN("The operator '", op, "' has no native foo kernel: it runs through the CPU fallback.");
  }
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
  std::map<std::string, int64_t> by_name = s.deregistered_counts;
  for (const auto& [key, entry] : s.counts) by_name[c10::toString(entry.name)] += entry.count;
  return {by_name.begin(), by_name.end()};
}

void resetFallbackCounts() {
  FallbackState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.counts.clear();
  s.deregistered_counts.clear();
}

}  // namespace torch_foo
