#include "foo/host_allocator.h"

#include <ATen/core/CachingHostAllocator.h>

#include "foo/common.h"

namespace torch_foo {
namespace {

void freePinned(void* ptr) {
  if (ptr != nullptr) foo_rt::freeHost(ptr);
}

// Uncached: pinning is rare next to device allocation, and the runtime's mallocHost is an mmap.
struct PinnedHostAllocator final : public at::HostAllocator {
  at::DataPtr allocate(size_t nbytes) override {
    void* ptr = nullptr;
    if (nbytes > 0) FOO_CHECK(foo_rt::mallocHost(&ptr, nbytes));
    return {ptr, ptr, &freePinned, c10::Device(c10::kCPU)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &freePinned; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
  // Each pinned block is freed when its tensor dies; there is no cache to protect from stream reuse, and a block freed
  // under a queued copy stays mapped until the copy has run (foo_rt::freeHost), so no event is needed.
  bool record_event(void* /*ptr*/, void* /*ctx*/, c10::Stream /*stream*/) override { return true; }
  void empty_cache() override {}
  at::HostStats get_stats() override { return {}; }
  void reset_accumulated_stats() override {}
  void reset_peak_stats() override {}
};

PinnedHostAllocator g_pinned;

}  // namespace

c10::Allocator& pinnedHostAllocator() { return g_pinned; }

REGISTER_HOST_ALLOCATOR(kFoo, &g_pinned)

}  // namespace torch_foo
