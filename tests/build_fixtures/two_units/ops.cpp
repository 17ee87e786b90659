#include <csignal>

#include <torch/library.h>

#include "fixture.h"

TORCH_LIBRARY(build_fixture, m) {
  m.def("answer() -> int", [] { return fixture_value(); });
}

// The check a backend build runs (BuildSpec.exception_probe): a formatted C++ error must reach Python. A value of
// -11 stands for a toolchain whose exceptions crash the process instead.
TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("raise_formatted_error(int[] sizes) -> ()", [](c10::IntArrayRef sizes) {
    if (fixture_value() == -11) std::raise(SIGSEGV);
    TORCH_CHECK(false, "a formatted C++ error for sizes ", sizes, " reached Python");
  });
}
