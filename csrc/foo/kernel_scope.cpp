#include "foo/kernel_scope.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/TensorImpl.h>

#include <array>
#include <cstring>
#include <typeinfo>

#include "foo/allocator.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

thread_local int t_redirect_device = -1;

void freeDeviceBlockByAlias(void* host_ptr) {
  if (host_ptr != nullptr) deviceAllocator().raw_deleter()(foo_rt::deviceAddress(host_ptr));
}

// The process-wide CPU allocator: forwards to PyTorch's own unless the calling thread is inside a KernelScope.
struct RedirectingCpuAllocator final : public c10::Allocator {
  c10::Allocator* delegate = nullptr;

  at::DataPtr allocate(size_t nbytes) override {
    const int device = t_redirect_device;
    if (device < 0 || nbytes == 0) return delegate->allocate(nbytes);
    at::DataPtr block = allocateDeviceMemory(static_cast<c10::DeviceIndex>(device), nbytes);
    void* host = foo_rt::hostView(block.get());
    block.release_context();  // ownership moves to the alias DataPtr below
    return at::DataPtr(host, host, &freeDeviceBlockByAlias, c10::Device(c10::kCPU));
  }

  static void rawDelete(void* ptr);

  at::DeleterFnPtr raw_deleter() const override { return &rawDelete; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
};

RedirectingCpuAllocator g_cpu_allocator;
c10::DeleterFnPtr g_delegate_raw_deleter = nullptr;

void RedirectingCpuAllocator::rawDelete(void* ptr) {
  if (foo_rt::deviceAddress(ptr) != nullptr) {
    freeDeviceBlockByAlias(ptr);
  } else if (g_delegate_raw_deleter != nullptr) {
    g_delegate_raw_deleter(ptr);
  }
}

const bool g_installed = [] {
  g_cpu_allocator.delegate = c10::GetCPUAllocator();
  g_delegate_raw_deleter = g_cpu_allocator.delegate->raw_deleter();
  c10::SetCPUAllocator(&g_cpu_allocator, /*priority=*/100);
  return true;
}();

[[noreturn]] void deviceMismatch(const c10::Device& a, const c10::Device& b) {
  TORCH_CHECK(false, "Expected all tensors to be on the same device, but found at least two devices, ", a, " and ", b,
              "!");
}

bool sameMathBits(const at::Tensor& a, const at::Tensor& b) {
  return a.is_conj() == b.is_conj() && a.is_neg() == b.is_neg() && a._is_zerotensor() == b._is_zerotensor();
}

// A tensor over `storage` with like's geometry and math bits: a lazy conjugate, negation or efficient zero tensor
// stays one on the other side, so CPU kernels (which honour the bits) compute what they compute on CPU.
at::Tensor makeTensor(c10::Storage storage, c10::DispatchKey key, const at::Tensor& like) {
  c10::DispatchKeySet keys(key);
  if (like.is_conj()) keys = keys.add(c10::DispatchKey::Conjugate);
  if (like.is_neg()) keys = keys.add(c10::DispatchKey::Negative);
  if (like._is_zerotensor()) keys = keys.add(c10::DispatchKey::ZeroTensor);
  auto impl = c10::make_intrusive<c10::TensorImpl>(std::move(storage), keys, like.dtype());
  impl->set_sizes_and_strides(like.sizes(), like.strides(), like.storage_offset());
  return at::Tensor(std::move(impl));
}

c10::Storage makeFooStorage(at::DataPtr data, size_t nbytes) {
  return c10::Storage(c10::Storage::use_byte_size_t(), nbytes, std::move(data), &deviceAllocator(), /*resizable=*/true);
}

}  // namespace

void DeviceChecker::add(const at::Tensor& t) {
  if (!t.defined()) return;
  const c10::Device where = t.device();
  if (where.type() == kFoo) {
    if (device_ < 0) device_ = where.index();
    if (where.index() != device_) deviceMismatch(c10::Device(kFoo, device_), where);
    if (cpu_seen_) deviceMismatch(where, c10::Device(c10::kCPU));
  } else if (t.dim() != 0) {
    cpu_seen_ = true;  // a CPU tensor with a foo tensor is an error; on its own it is the caller's business
    if (device_ >= 0) deviceMismatch(c10::Device(kFoo, device_), where);
  }
}

void DeviceChecker::addAllowingCpu(const at::Tensor& t) {
  if (t.defined() && t.device().type() == kFoo) add(t);
}

c10::DeviceIndex commonDevice(std::initializer_list<const at::Tensor*> tensors) {
  DeviceChecker checker;
  for (const at::Tensor* t : tensors) checker.add(*t);
  return checker.device();
}

void checkWrittenTensor(const at::Tensor& t, c10::DeviceIndex device) {
  if (!t.defined() || device < 0 || t.device().type() == kFoo) return;
  TORCH_CHECK(false, "Expected out tensor to have device ", c10::Device(kFoo, device), ", but got ", t.device(),
              " instead");
}

int setCpuAllocationRedirect(int device) {
  const int previous = t_redirect_device;
  t_redirect_device = device;
  return previous;
}

KernelScope::KernelScope(c10::DeviceIndex device) : device_(device), previous_device_(currentDevice()) {
  // A kernel on an idle stream touches device memory without a runtime call that would refuse it, and a forked
  // child shares that memory with its parent.
  TORCH_CHECK(!foo_rt::forkedChild(), "foo: ", foo_rt::statusString(foo_rt::Status::ForkedChild));
  if (device_ != previous_device_) setCurrentDevice(device_);
  foo_rt::Stream stream = currentRuntimeStream(device_);
  if (!foo_rt::detail::streamIdle(stream)) FOO_CHECK(foo_rt::streamSynchronize(stream));
  previous_redirect_ = setCpuAllocationRedirect(device_);
  if (tracingKernels()) beginKernelTrace(trace_);
}

KernelScope::~KernelScope() {
  if (trace_.start_ns >= 0) endKernelTrace(trace_, device_, currentStreamId(device_));
  setCpuAllocationRedirect(previous_redirect_);
  if (device_ != previous_device_) foo_rt::setDevice(previous_device_);
}

KernelScope::StoragePair* KernelScope::find(c10::StorageImpl* host) {
  for (StoragePair& pair : storages_) {
    if (pair.host == host) return &pair;
  }
  return nullptr;
}

namespace {

// Aliases recently built on this thread. Building a TensorImpl and a StorageImpl costs more than a small kernel, and
// loops pass the same tensors again and again; an alias is a plain view of memory, so one whose memory and geometry
// match is as good as a new one, provided nothing else still holds it. Entries are keyed by the device address: a
// lookup compares one pointer per entry.
struct AliasCache {
  struct Entry {
    const void* device_data = nullptr;
    const void* host_data = nullptr;  // the alias's memory when made: a resize by a kernel re-points it
    at::Tensor alias;
  };
  std::array<Entry, 8> entries;
  size_t next = 0;

  at::Tensor find(const at::Tensor& t, const c10::StorageImpl& foo_storage) const {
    for (const Entry& entry : entries) {
      if (entry.device_data != foo_storage.data() || !entry.alias.defined() || entry.alias.use_count() != 1) continue;
      const at::Tensor& alias = entry.alias;
      c10::StorageImpl* storage = alias.unsafeGetTensorImpl()->unsafe_storage().unsafeGetStorageImpl();
      if (c10::raw::intrusive_ptr::use_count(storage) == 1 && storage->data() == entry.host_data &&
          storage->nbytes() == foo_storage.nbytes() && storage->resizable() == foo_storage.resizable() &&
          alias.dtype() == t.dtype() && sameMathBits(alias, t) && alias.storage_offset() == t.storage_offset() &&
          alias.sizes() == t.sizes() && alias.strides() == t.strides()) {
        return alias;
      }
    }
    return at::Tensor();
  }
  void add(const void* device_data, const void* host_data, const at::Tensor& alias) {
    entries[next++ % entries.size()] = {device_data, host_data, alias};
  }
};
thread_local AliasCache t_alias_cache;

}  // namespace

at::Tensor KernelScope::alias(const at::Tensor& t) {
  if (!t.defined() || t.device().type() != kFoo) return t;
  c10::StorageImpl* foo_storage = t.storage().unsafeGetStorageImpl();
  for (StoragePair& pair : storages_) {
    if (pair.foo.unsafeGetStorageImpl() != foo_storage) continue;
    const at::Tensor& seen = pair.alias;
    if (seen.defined() && seen.dtype() == t.dtype() && sameMathBits(seen, t) && seen.storage_offset() == t.storage_offset() &&
        seen.sizes() == t.sizes() && seen.strides() == t.strides()) {
      return seen;
    }
    return makeTensor(c10::Storage(c10::intrusive_ptr<c10::StorageImpl>::reclaim_copy(pair.host)),
                      c10::DispatchKey::CPU, t);
  }
  AliasCache& cache = t_alias_cache;
  at::Tensor result = cache.find(t, *foo_storage);
  if (!result.defined()) {
    // Resizable like the device storage, through the CPU allocator: a resize inside the kernel lands in device memory.
    void* host = foo_storage->data() ? foo_rt::hostView(foo_storage->data()) : nullptr;
    c10::Storage alias_storage(c10::Storage::use_byte_size_t(), foo_storage->nbytes(),
                               at::DataPtr(host, c10::Device(c10::kCPU)), &g_cpu_allocator, foo_storage->resizable());
    result = makeTensor(std::move(alias_storage), c10::DispatchKey::CPU, t);
    cache.add(foo_storage->data(), host, result);
  }
  c10::StorageImpl* alias_storage = result.unsafeGetTensorImpl()->unsafe_storage().unsafeGetStorageImpl();
  storages_.push_back({alias_storage, t.storage(), alias_storage->data(), result});
  return result;
}

c10::Storage KernelScope::fooStorageFor(c10::StorageImpl* host) {
  if (StoragePair* pair = find(host)) {
    if (host->data() != pair->host_data) {
      // The kernel re-allocated the alias (resize): its new memory is device memory it allocated through us.
      at::DataPtr& data = host->_mutable_data_ptr_no_checks();
      void* device_ptr = foo_rt::deviceAddress(data.get());
      TORCH_INTERNAL_ASSERT(device_ptr != nullptr || host->nbytes() == 0, "resized alias left device memory");
      data.release_context();
      c10::StorageImpl* foo = pair->foo.unsafeGetStorageImpl();
      foo->set_data_ptr_noswap(at::DataPtr(device_ptr, device_ptr, deviceAllocator().raw_deleter(), foo->device()));
      foo->set_nbytes(host->nbytes());
      pair->host_data = host->data();
    }
    return pair->foo;
  }
  at::DataPtr& data = host->_mutable_data_ptr_no_checks();
  c10::Storage foo;
  if (data.get() == nullptr) {
    foo = makeFooStorage(at::DataPtr(nullptr, c10::Device(kFoo, device_)), host->nbytes());
  } else if (data.get_deleter() == &freeDeviceBlockByAlias) {
    void* device_ptr = foo_rt::deviceAddress(data.get());
    const auto device = static_cast<c10::DeviceIndex>(foo_rt::pointerDevice(device_ptr));
    data.release_context();
    at::DataPtr device_data(device_ptr, device_ptr, deviceAllocator().raw_deleter(), c10::Device(kFoo, device));
    if (c10::raw::intrusive_ptr::use_count(host) == 1) {
      // Only the kernel's result holds this storage: turn it into the device storage instead of making another.
      host->set_data_ptr_noswap(std::move(device_data));
      host->set_allocator(&deviceAllocator());
      host->set_resizable(true);
      foo = c10::Storage(c10::intrusive_ptr<c10::StorageImpl>::reclaim_copy(host));
    } else {
      foo = makeFooStorage(std::move(device_data), host->nbytes());
    }
  } else {
    // Memory the kernel did not get from us (a cached constant, a worker thread's buffer): upload it.
    foo = makeFooStorage(allocateDeviceMemory(device_, host->nbytes()), host->nbytes());
    FOO_CHECK(foo_rt::memcpy(foo.mutable_data(), data.get(), host->nbytes()));
  }
  storages_.push_back({host, foo, host->data(), at::Tensor()});
  return foo;
}

at::Tensor KernelScope::toDevice(const at::Tensor& result) {
  if (!result.defined() || result.device().type() == kFoo) return result;
  TORCH_CHECK_NOT_IMPLEMENTED(result.layout() == c10::kStrided, kSparseUnsupported, " (an op made a ",
                              result.layout(), " tensor)");
  c10::Storage storage = fooStorageFor(result.storage().unsafeGetStorageImpl());
  c10::TensorImpl* impl = result.unsafeGetTensorImpl();
  if (result.use_count() == 1 && typeid(*impl) == typeid(c10::TensorImpl) && impl->allow_tensor_metadata_change()) {
    // Nothing but the caller holds the kernel's result: turn it into the foo tensor (device, dispatch keys) instead
    // of building another TensorImpl, a good part of a small op's cost.
    impl->set_storage_keep_dtype(std::move(storage));
    impl->_change_backend_component_keys(impl->device());
    return result;
  }
  return makeTensor(std::move(storage), c10::DispatchKey::PrivateUse1, result);
}

void KernelScope::commit(const at::Tensor& target, const at::Tensor& alias) {
  if (!target.defined() || target.device().type() != kFoo) return;
  c10::Storage storage = fooStorageFor(alias.storage().unsafeGetStorageImpl());
  c10::TensorImpl* impl = target.unsafeGetTensorImpl();
  if (!impl->storage().is_alias_of(storage)) impl->set_storage_keep_dtype(std::move(storage));
  if (impl->sizes() != alias.sizes() || impl->strides() != alias.strides() ||
      impl->storage_offset() != alias.storage_offset()) {
    impl->set_sizes_and_strides(alias.sizes(), alias.strides(), alias.storage_offset());
  }
  // Kernels may flip an output's lazy bits (linalg_lu_solve conjugates its result by setting the conj bit).
  if (impl->is_conj() != alias.is_conj()) impl->_set_conj(alias.is_conj());
  if (impl->is_neg() != alias.is_neg()) impl->_set_neg(alias.is_neg());
}

at::Tensor uploadToDevice(const at::Tensor& cpu, c10::DeviceIndex device) {
  KernelScope scope(device);
  return scope.toDevice(cpu);
}

namespace {
void releaseStorage(void* storage) { delete static_cast<c10::Storage*>(storage); }
}  // namespace

void checkHostAliasable(const at::Tensor& t) {
  if (!t.defined() || t.device().type() != kFoo) return;
  TORCH_CHECK(t.layout() == c10::kStrided, "foo collectives take strided tensors, got ", t.layout());
  TORCH_CHECK(!t.is_conj() && !t.is_neg() && !t._is_zerotensor(),
              "foo collectives take tensors without lazy conjugate/negative/zero bits: call resolve_conj() / "
              "resolve_neg() (or clone() a zero tensor) first");
  TORCH_CHECK(!foo_rt::forkedChild(), "foo: ", foo_rt::statusString(foo_rt::Status::ForkedChild));
}

at::Tensor hostAliasUnordered(const at::Tensor& t) {
  if (!t.defined() || t.device().type() != kFoo) return t;
  const c10::Storage& storage = t.storage();
  void* host = storage.data() != nullptr ? foo_rt::hostView(storage.data()) : nullptr;
  at::DataPtr data(host, new c10::Storage(storage), &releaseStorage, c10::Device(c10::kCPU));
  c10::Storage alias_storage(c10::Storage::use_byte_size_t(), storage.nbytes(), std::move(data), /*allocator=*/nullptr,
                             /*resizable=*/false);
  auto impl = c10::make_intrusive<c10::TensorImpl>(std::move(alias_storage), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                                   t.dtype());
  impl->set_sizes_and_strides(t.sizes(), t.strides(), t.storage_offset());
  return at::Tensor(std::move(impl));
}

at::Tensor hostAlias(const at::Tensor& t) {
  if (!t.defined() || t.device().type() != kFoo) return t;
  checkHostAliasable(t);
  foo_rt::Stream stream = currentRuntimeStream(t.device().index());
  if (!foo_rt::detail::streamIdle(stream)) FOO_CHECK(foo_rt::streamSynchronize(stream));
  return hostAliasUnordered(t);
}

}  // namespace torch_foo
