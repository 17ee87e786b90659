// Running ATen's CPU kernels on foo device memory: the simulated chip's math library.
//
// A kernel sees each foo tensor through a CPU "alias" tensor: same sizes, strides and offset, over the runtime's
// host view of the same device memory (foo_rt::hostView). Inside a KernelScope every CPU allocation made by this
// thread is served from the device (the CPU allocator is routed to foo memory), so results a CPU kernel allocates
// already live on the device and become foo tensors without a copy (toDevice). Aliasing is exact: foo tensors that
// share a storage get aliases that share one alias storage, and an alias resized or re-pointed by an out= kernel is
// written back to its foo tensor (commit).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/MaybeOwned.h>
#include <c10/util/SmallVector.h>

#include <initializer_list>

#include "foo/common.h"
#include "foo/profiler.h"

namespace torch_foo {

// The device all foo tensors among `tensors` live on. Raises PyTorch's usual device-mismatch error for tensors on two
// foo devices, or for a CPU tensor that is not a 0-dim scalar. Undefined tensors are skipped; -1 if no foo tensor.
class DeviceChecker {
 public:
  void add(const at::Tensor& t);
  // CPU tensors of any shape are accepted (ops such as index take CPU indices on accelerators too).
  void addAllowingCpu(const at::Tensor& t);
  c10::DeviceIndex device() const { return device_; }

 private:
  c10::DeviceIndex device_ = -1;
  bool cpu_seen_ = false;
};
c10::DeviceIndex commonDevice(std::initializer_list<const at::Tensor*> tensors);

// An out= or in-place argument of a kernel that runs on foo `device` (-1: none): refused unless it is a foo tensor, as
// CUDA refuses a CPU out=; CPU 0-dim tensors pass as inputs, but written, they would be resized into device memory.
void checkWrittenTensor(const at::Tensor& t, c10::DeviceIndex device);

struct KernelThreadState;
struct AliasCacheEntry;

class KernelScope {
 public:
  // Makes `device` current, waits for the current stream's queued work (kernels run in stream order) and routes this
  // thread's CPU allocations to the device until destruction.
  explicit KernelScope(c10::DeviceIndex device);
  ~KernelScope();
  KernelScope(const KernelScope&) = delete;
  KernelScope& operator=(const KernelScope&) = delete;

  c10::DeviceIndex device() const { return device_; }
  // CPU alias of a foo tensor, lent by the scope (it lives until the scope ends); other tensors are lent as they are.
  // The scope borrows t's storage as well: t must outlive the scope, as a kernel's arguments do.
  c10::MaybeOwned<at::Tensor> alias(const at::Tensor& t);
  // A foo tensor for a CPU kernel's result: the input it aliases, a view of an input's storage, or a new foo tensor
  // over the device memory the kernel allocated (host memory results are copied to the device). A result nothing
  // else holds becomes the foo tensor itself.
  at::Tensor toDevice(at::Tensor result);
  // Writes back what an out=/in-place kernel did to the alias of `target` (resize, new storage, restride).
  void commit(const at::Tensor& target, const at::Tensor& alias);
  // The kernel's name in a profiler trace, when not that of the operator that launched it.
  void setTraceName(std::string name) { trace_.name = std::move(name); }

 private:
  // Small ops pay for every reference count taken here (an atomic operation each): an aliased tensor's storage is
  // borrowed, and cached aliases are lent where the thread's alias cache keeps them.
  struct StoragePair {
    c10::StorageImpl* host = nullptr;   // alias storage (or CPU storage a result was allocated in)
    c10::StorageImpl* foo = nullptr;    // the device storage behind it: an aliased tensor's, or held by `result_foo`
    c10::Storage result_foo;            // holds a result's device storage (the result may be dropped before the end)
    const void* host_data = nullptr;    // alias data pointer at creation, to detect re-allocation by resize
    at::Tensor alias;                   // an alias this scope made for it; joins the thread's cache at the end
    AliasCacheEntry* cached = nullptr;  // or the cache entry whose alias it lent (same geometry, same alias: x + x)
    const at::Tensor& lent() const;
  };
  c10::StorageImpl* fooStorageFor(c10::StorageImpl* host);
  StoragePair* find(c10::StorageImpl* host);

  c10::DeviceIndex device_;
  c10::DeviceIndex previous_device_;
  KernelThreadState* thread_;  // this thread's allocation routing, alias cache, current device and streams
  int previous_redirect_;
  c10::SmallVector<StoragePair, 4> storages_;
  KernelTrace trace_;  // filled while a profiler records foo kernels
};

// Tensors on foo are strided: its kernels run CPU kernels over device memory, and sparse layouts have no storage to
// alias (PyTorch's SparsePrivateUse1 keys would need a kernel per sparse op).
inline constexpr const char* kSparseUnsupported =
    "foo supports strided tensors only: sparse (COO, CSR, CSC, BSR, BSC) tensors cannot live on foo; keep them on the "
    "CPU or convert with to_dense()";

// Routes the current thread's CPU allocations to device memory of `device` (-1: off); returns the previous setting.
int setCpuAllocationRedirect(int device);

// Copies a CPU tensor's data into device memory of `device` (a new foo tensor of the same sizes and strides).
at::Tensor uploadToDevice(const at::Tensor& cpu, c10::DeviceIndex device);

// A CPU tensor over the host view of a foo tensor's memory (same sizes, strides and offset), after the work queued on
// the current stream of its device, for transports outside kernels (the c10d backend hands these to Gloo). Unlike a
// kernel's alias, its storage holds the foo storage, so the memory stays allocated while it lives. Other tensors are
// returned as they are; tensors with lazy conjugate/negative/zero bits are refused.
at::Tensor hostAlias(const at::Tensor& t);
// The same for a tensor checkHostAliasable accepted, without waiting for the stream: for a caller that checked it
// and orders itself after the stream's work another way.
at::Tensor hostAliasUnordered(const at::Tensor& t);
// Raises what hostAlias would refuse in `t` (a layout other than strided, lazy bits, a forked child).
void checkHostAliasable(const at::Tensor& t);

}  // namespace torch_foo
