#include <torch/library.h>

#include "fixture.h"

TORCH_LIBRARY(build_fixture, m) {
  m.def("answer() -> int", [] { return fixture_value(); });
}
