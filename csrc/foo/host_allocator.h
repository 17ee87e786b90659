// Pinned (page-locked) host memory for foo: the source of truly asynchronous host-to-device copies.
#pragma once

#include <c10/core/Allocator.h>

namespace torch_foo {

c10::Allocator& pinnedHostAllocator();

}  // namespace torch_foo
