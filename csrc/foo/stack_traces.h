// Python stacks for the caching allocator's recorded history (the "frames" of torch.foo.memory._snapshot()), through
// torch's CapturedTraceback, as CUDA's allocator records them. Only this unit includes its (heavy) header.
#pragma once

#include <c10/core/Allocator.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torch_foo {

// The calling thread's Python stack (empty on a thread that runs no Python). Takes the GIL: never call it holding a
// lock that a thread holding the GIL may wait for.
std::shared_ptr<c10::GatheredContext> gatherPythonStack();

// Stacks as a table of frames and, per stack, the indices of its frames (innermost first).
struct SymbolizedStacks {
  std::vector<std::string> files, functions;
  std::vector<int64_t> lines;
  std::vector<std::vector<int64_t>> frames;
};
// Each stack must come from gatherPythonStack.
SymbolizedStacks symbolizeStacks(const std::vector<c10::GatheredContext*>& stacks);

}  // namespace torch_foo
