// The torch headers most units of both libraries include, and most of their compile time: the build compiles them
// once per library with GCC and includes the result first in each unit that includes either of them, itself or
// through our headers (torch_foo/_build.py, BuildSpec.precompiled_header). Each unit still includes what it uses.
// List here only headers nearly all of those units need: each of them pays for loading all of it.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>
