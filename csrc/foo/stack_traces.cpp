#include "foo/stack_traces.h"

#include <torch/csrc/profiler/combined_traceback.h>

namespace torch_foo {

std::shared_ptr<c10::GatheredContext> gatherPythonStack() {
  return torch::CapturedTraceback::gather(/*python=*/true, /*script=*/false, /*cpp=*/false);
}

SymbolizedStacks symbolizeStacks(const std::vector<c10::GatheredContext*>& stacks) {
  std::vector<torch::CapturedTraceback*> tracebacks;
  tracebacks.reserve(stacks.size());
  for (c10::GatheredContext* stack : stacks) tracebacks.push_back(static_cast<torch::CapturedTraceback*>(stack));
  torch::SymbolizedTracebacks symbolized = torch::symbolize(tracebacks);
  SymbolizedStacks result;
  for (torch::unwind::Frame& frame : symbolized.all_frames) {
    result.files.push_back(std::move(frame.filename));
    result.functions.push_back(std::move(frame.funcname));
    result.lines.push_back(static_cast<int64_t>(frame.lineno));
  }
  for (const std::vector<uint64_t>& traceback : symbolized.tracebacks) {
    result.frames.emplace_back(traceback.begin(), traceback.end());
  }
  return result;
}

}  // namespace torch_foo
