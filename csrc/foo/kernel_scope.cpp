#include "foo/kernel_scope.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/TensorImpl.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <typeinfo>
#include <utility>

#include "foo/allocator.h"
#include "foo/stream.h"

namespace torch_foo {

// An alias in a thread's alias cache (below).
struct AliasCacheEntry {
  const void* device_data = nullptr;
  // The alias storage's size and resizability when cached: nothing else holds it, so they stay true while its data
  // pointer does (a resize re-points it), and a lookup need not reach into the storage.
  size_t nbytes = 0;
  bool resizable = false;
  bool lent = false;  // lent to a scope that is still running
  at::Tensor alias;
};

const at::Tensor& KernelScope::StoragePair::lent() const { return cached != nullptr ? cached->alias : alias; }

namespace {

// The lazy conjugate, negation and zero-tensor bits among a tensor's dispatch keys (one bit each).
const uint64_t kMathBits =
    c10::DispatchKeySet({c10::DispatchKey::Conjugate, c10::DispatchKey::Negative, c10::DispatchKey::ZeroTensor})
        .raw_repr();

// A TensorImpl's layout record, read directly. Its sizes(), strides() and storage_offset() accessors each re-check the
// tensor's sizes policy (a call may change it), which made a comparison of two 1-d layouts ~80 instructions.
struct LayoutRecord : c10::TensorImpl {
  // False for tensors whose sizes or strides a subclass computes (nested, sparse, Python subclasses): their record is
  // not their layout. Named through this class, as protected members must be; callable on any TensorImpl.
  static bool isPlain(const c10::TensorImpl& t) {
    return !(t.*&LayoutRecord::matches_policy)(SizesStridesPolicy::CustomStrides);
  }
  static const c10::impl::SizesAndStrides& of(const c10::TensorImpl& t) {
    return const_cast<c10::TensorImpl&>(t).sizes_and_strides();  // the accessor is not const; this only reads
  }
};

// A TensorImpl's dispatch keys, written directly (protected: named through this class).
struct KeySetRecord : c10::TensorImpl {
  static c10::DispatchKeySet& of(c10::TensorImpl& t) { return t.*&KeySetRecord::key_set_; }
};

C10_NOINLINE bool sameComputedLayout(const c10::TensorImpl& x, const c10::TensorImpl& y) {
  return x.sizes().equals(y.sizes()) && x.strides().equals(y.strides()) && x.storage_offset() == y.storage_offset();
}

// Same offset, sizes and strides, in one pass over the dimensions (no memcmp calls: these are a few words).
bool sameLayout(const c10::TensorImpl& x, const c10::TensorImpl& y) {
  if (C10_UNLIKELY(!LayoutRecord::isPlain(x) || !LayoutRecord::isPlain(y))) return sameComputedLayout(x, y);
  const c10::impl::SizesAndStrides &xr = LayoutRecord::of(x), &yr = LayoutRecord::of(y);
  const size_t dims = xr.size();
  if (dims != yr.size() || x.storage_offset() != y.storage_offset()) return false;
  const int64_t *x_sizes = xr.sizes_data(), *y_sizes = yr.sizes_data();
  const int64_t *x_strides = xr.strides_data(), *y_strides = yr.strides_data();
  for (size_t d = 0; d < dims; ++d) {
    if (x_sizes[d] != y_sizes[d] || x_strides[d] != y_strides[d]) return false;
  }
  return true;
}

// Same dtype, lazy bits and layout. Runs once or twice per argument of every op: the bits are compared at once.
bool sameGeometry(const at::Tensor& a, const at::Tensor& b) {
  const c10::TensorImpl& x = *a.unsafeGetTensorImpl();
  const c10::TensorImpl& y = *b.unsafeGetTensorImpl();
  return x.dtype() == y.dtype() && ((x.key_set().raw_repr() ^ y.key_set().raw_repr()) & kMathBits) == 0 &&
         sameLayout(x, y);
}

// Aliases recently lent on this thread. Building a TensorImpl and a StorageImpl costs more than a small kernel, and
// loops pass the same tensors again and again; an alias is a plain view of memory, so one whose memory and geometry
// match is as good as a new one. A scope lends cached aliases in place (marked lent, so that no other scope takes or
// evicts them) and at its end keeps in the cache only those nothing else kept; aliases it had to make join the cache
// then. Entries are keyed by the device address, and a small table hashed by that address names the entry that last
// held each: a lookup tries that entry first, and compares one pointer per entry only when it is not the one.
struct AliasCache {
  using Entry = AliasCacheEntry;
  std::array<Entry, 8> entries;
  // 64 rows (one cache line): the few tensors of a loop rarely share one, and two that do only cost each other the
  // comparisons the hint spares.
  std::array<uint8_t, 64> entry_of_hash{};
  size_t next = 0;

  static size_t hashOf(const void* device_data) {
    return (reinterpret_cast<uintptr_t>(device_data) * 0x9E3779B97F4A7C15ull) >> 58;  // Fibonacci hashing
  }

  static bool lendable(const Entry& entry, const at::Tensor& t, const c10::StorageImpl& foo_storage) {
    return !entry.lent && entry.alias.defined() && entry.nbytes == foo_storage.nbytes() &&
           entry.resizable == foo_storage.resizable() && sameGeometry(entry.alias, t);
  }

  // An entry whose alias matches t's storage and geometry, marked lent; null if none.
  Entry* lend(const at::Tensor& t, const c10::StorageImpl& foo_storage) {
    const void* device_data = foo_storage.data();
    uint8_t& hinted = entry_of_hash[hashOf(device_data)];
    Entry* found = &entries[hinted];
    if (found->device_data != device_data || !lendable(*found, t, foo_storage)) {
      found = nullptr;
      for (Entry& entry : entries) {
        if (entry.device_data == device_data && lendable(entry, t, foo_storage)) {
          found = &entry;
          hinted = static_cast<uint8_t>(&entry - entries.data());
          break;
        }
      }
      if (found == nullptr) return nullptr;
    }
    found->lent = true;
    return found;
  }

  // True when only the cache holds `alias` and its storage, still over `host_data` (a kernel that resized or re-pointed
  // it, or kept a reference, makes it unfit to lend again).
  static bool reusable(const at::Tensor& alias, const void* host_data) {
    const c10::StorageImpl* storage = alias.unsafeGetTensorImpl()->unsafe_storage().unsafeGetStorageImpl();
    return alias.use_count() == 1 &&
           c10::raw::intrusive_ptr::use_count(const_cast<c10::StorageImpl*>(storage)) == 1 &&
           storage->data() == host_data;
  }

  static void giveBackLent(Entry& entry, const void* host_data) {
    entry.lent = false;
    if (!reusable(entry.alias, host_data)) entry.alias = at::Tensor();
  }

  // Caches an alias a scope made (`host_data`: the memory it was made over).
  void add(const void* device_data, const void* host_data, at::Tensor&& alias) {
    if (!reusable(alias, host_data)) return;
    Entry* slot = nullptr;
    for (Entry& entry : entries) {
      if (!entry.alias.defined()) {
        slot = &entry;
        break;
      }
    }
    for (size_t tries = 0; slot == nullptr && tries < entries.size(); ++tries) {  // the oldest, unless lent
      Entry& entry = entries[next++ % entries.size()];
      if (!entry.lent) slot = &entry;
    }
    if (slot == nullptr) return;
    const c10::StorageImpl* storage = alias.unsafeGetTensorImpl()->unsafe_storage().unsafeGetStorageImpl();
    *slot = {device_data, storage->nbytes(), storage->resizable(), false, std::move(alias)};
    entry_of_hash[hashOf(device_data)] = static_cast<uint8_t>(slot - entries.data());
  }
};

}  // namespace

// What kernel scopes keep per thread, reached through one thread-local: each access to a shared library's
// thread-local costs a call (__tls_get_addr), and a small op would otherwise make several. Plain data, so that it
// stays valid while the thread exits (a thread-local's destructor may allocate, and allocations read it).
struct KernelThreadState {
  int redirect_device = -1;       // where this thread's CPU allocations go (-1: the CPU)
  AliasCache* aliases = nullptr;  // this thread's alias cache, once a scope made it; null again when the thread exits
  bool exited = false;            // the cache was destroyed: scopes run uncached from then on
  // The thread's current device (the runtime's) and current stream ids, found by the thread's first scope: reading
  // them here spares each scope two calls and two thread-local lookups.
  const int* current_device = nullptr;
  const c10::StreamId* current_streams = nullptr;
  // The dispatch keys of the last CPU result this thread turned into a foo tensor, and the keys it got: the new keys
  // are a function of the old ones (and the device type), and nearly every result has the same.
  c10::DispatchKeySet converted_from{c10::DispatchKeySet::FULL};  // no tensor's keys
  c10::DispatchKeySet converted_to;
};

namespace {

thread_local KernelThreadState t_state;

// Owns the thread's alias cache: destroyed (with the aliases it holds) when the thread exits.
struct ThreadAliasCache : AliasCache {
  ThreadAliasCache() { t_state.aliases = this; }
  ~ThreadAliasCache() {
    t_state.aliases = nullptr;
    t_state.exited = true;
  }
};
thread_local ThreadAliasCache t_alias_cache;

AliasCache* aliasCacheOf(const KernelThreadState& state) {
  if (state.aliases == nullptr && !state.exited) return &t_alias_cache;  // first use on this thread: constructs it
  return state.aliases;
}

void freeDeviceBlockByAlias(void* host_ptr) {
  if (host_ptr != nullptr) deviceAllocator().raw_deleter()(foo_rt::deviceAddress(host_ptr));
}

// The process-wide CPU allocator: forwards to PyTorch's own unless the calling thread is inside a KernelScope.
struct RedirectingCpuAllocator final : public c10::Allocator {
  c10::Allocator* delegate = nullptr;

  at::DataPtr allocate(size_t nbytes) override {
    const int device = t_state.redirect_device;
    if (device < 0 || nbytes == 0) return delegate->allocate(nbytes);
    // A scope on this thread set the redirection, and found the thread's current streams then.
    const auto index = static_cast<c10::DeviceIndex>(device);
    at::DataPtr block = allocateDeviceMemory(index, nbytes, t_state.current_streams[index]);
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

// A tensor's storage, checked as Tensor::storage() checks it but called directly: storage() is virtual, and with
// our own copy of it bound by -Bsymbolic-functions, the compiler's guess at the target never matches libc10's vtable.
const c10::Storage& storageOf(const at::Tensor& t) { return t.unsafeGetTensorImpl()->c10::TensorImpl::storage(); }

[[noreturn]] void deviceMismatch(const c10::Device& a, const c10::Device& b) {
  TORCH_CHECK(false, "Expected all tensors to be on the same device, but found at least two devices, ", a, " and ", b,
              "!");
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

// A new reference to `storage`.
c10::Storage holding(c10::StorageImpl* storage) {
  return c10::Storage(c10::intrusive_ptr<c10::StorageImpl>::reclaim_copy(storage));
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

int setCpuAllocationRedirect(int device) { return std::exchange(t_state.redirect_device, device); }

namespace {
C10_NOINLINE void findCurrentDeviceAndStreams(KernelThreadState& state) {
  currentDevice();  // raises if there are no devices (the count is fixed for the process: checked once per thread)
  state.current_device = foo_rt::detail::currentDeviceSlot();
  state.current_streams = currentStreamIds();
}
}  // namespace

KernelScope::KernelScope(c10::DeviceIndex device) : device_(device), thread_(&t_state) {
  if (C10_UNLIKELY(thread_->current_device == nullptr)) findCurrentDeviceAndStreams(*thread_);
  previous_device_ = static_cast<c10::DeviceIndex>(*thread_->current_device);
  // A kernel on an idle stream touches device memory without a runtime call that would refuse it, and a forked
  // child shares that memory with its parent.
  TORCH_CHECK(!foo_rt::forkedChild(), "foo: ", foo_rt::statusString(foo_rt::Status::ForkedChild));
  if (device_ != previous_device_) setCurrentDevice(device_);
  foo_rt::Stream stream = runtimeStreamOf(device_, thread_->current_streams[device_]);
  if (!foo_rt::detail::streamIdle(stream)) FOO_CHECK(foo_rt::streamSynchronize(stream));
  previous_redirect_ = std::exchange(thread_->redirect_device, device_);
  if (tracingKernels()) beginKernelTrace(trace_);
}

KernelScope::~KernelScope() {
  if (trace_.start_ns >= 0) endKernelTrace(trace_, device_, currentStreamId(device_));
  thread_->redirect_device = previous_redirect_;
  if (device_ != previous_device_) foo_rt::setDevice(previous_device_);
  for (StoragePair& pair : storages_) {
    if (pair.cached != nullptr) {
      AliasCache::giveBackLent(*pair.cached, pair.host_data);
    } else if (pair.alias.defined() && thread_->aliases != nullptr) {
      thread_->aliases->add(pair.foo->data(), pair.host_data, std::move(pair.alias));
    }
  }
}

KernelScope::StoragePair* KernelScope::find(c10::StorageImpl* host) {
  for (StoragePair& pair : storages_) {
    if (pair.host == host) return &pair;
  }
  return nullptr;
}

c10::MaybeOwned<at::Tensor> KernelScope::alias(const at::Tensor& t) {
  if (!t.defined() || t.device().type() != kFoo) return c10::MaybeOwned<at::Tensor>::borrowed(t);
  c10::StorageImpl* foo_storage = storageOf(t).unsafeGetStorageImpl();
  for (StoragePair& pair : storages_) {
    if (pair.foo != foo_storage) continue;
    const at::Tensor& lent = pair.lent();
    if (!lent.defined()) continue;
    if (sameGeometry(lent, t)) return c10::MaybeOwned<at::Tensor>::borrowed(lent);
    return c10::MaybeOwned<at::Tensor>::owned(makeTensor(holding(pair.host), c10::DispatchKey::CPU, t));
  }
  // Filled in place: a StoragePair built aside and moved in costs a small op a few dozen instructions per argument.
  StoragePair& pair = storages_.emplace_back();
  pair.foo = foo_storage;
  AliasCache* cache = aliasCacheOf(*thread_);
  pair.cached = cache != nullptr ? cache->lend(t, *foo_storage) : nullptr;
  if (pair.cached == nullptr) {
    // Resizable like the device storage, through the CPU allocator: a resize inside the kernel lands in device memory.
    void* host = foo_storage->data() ? foo_rt::hostView(foo_storage->data()) : nullptr;
    c10::Storage alias_storage(c10::Storage::use_byte_size_t(), foo_storage->nbytes(),
                               at::DataPtr(host, c10::Device(c10::kCPU)), &g_cpu_allocator, foo_storage->resizable());
    pair.alias = makeTensor(std::move(alias_storage), c10::DispatchKey::CPU, t);
  }
  const at::Tensor& lent = pair.lent();
  pair.host = lent.unsafeGetTensorImpl()->unsafe_storage().unsafeGetStorageImpl();
  pair.host_data = pair.host->data();
  return c10::MaybeOwned<at::Tensor>::borrowed(lent);
}

c10::StorageImpl* KernelScope::fooStorageFor(c10::StorageImpl* host) {
  if (StoragePair* pair = find(host)) {
    if (host->data() != pair->host_data) {
      // The kernel re-allocated the alias (resize): its new memory is device memory it allocated through us.
      at::DataPtr& data = host->_mutable_data_ptr_no_checks();
      void* device_ptr = foo_rt::deviceAddress(data.get());
      TORCH_INTERNAL_ASSERT(device_ptr != nullptr || host->nbytes() == 0, "resized alias left device memory");
      data.release_context();
      pair->foo->set_data_ptr_noswap(
          at::DataPtr(device_ptr, device_ptr, deviceAllocator().raw_deleter(), pair->foo->device()));
      pair->foo->set_nbytes(host->nbytes());
      pair->host_data = host->data();
    }
    return pair->foo;
  }
  at::DataPtr& data = host->_mutable_data_ptr_no_checks();
  c10::Storage foo;
  if (data.get() == nullptr) {
    foo = makeFooStorage(at::DataPtr(nullptr, c10::Device(kFoo, device_)), host->nbytes());
  } else if (data.get_deleter() == &freeDeviceBlockByAlias) {
    int device = -1;
    void* device_ptr = foo_rt::deviceAddress(data.get(), &device);
    data.release_context();
    at::DataPtr device_data(device_ptr, device_ptr, deviceAllocator().raw_deleter(),
                            c10::Device(kFoo, static_cast<c10::DeviceIndex>(device)));
    if (c10::raw::intrusive_ptr::use_count(host) == 1) {
      // Only the kernel's result holds this storage: turn it into the device storage instead of making another. No
      // other result can share it (it would hold it too), so nothing will look it up again: not recorded.
      host->set_data_ptr_noswap(std::move(device_data));
      host->set_allocator(&deviceAllocator());
      host->set_resizable(true);
      return host;
    }
    foo = makeFooStorage(std::move(device_data), host->nbytes());
  } else {
    // Memory the kernel did not get from us (a cached constant, a worker thread's buffer): upload it.
    foo = makeFooStorage(allocateDeviceMemory(device_, host->nbytes()), host->nbytes());
    FOO_CHECK(foo_rt::memcpy(foo.mutable_data(), data.get(), host->nbytes()));
  }
  c10::StorageImpl* foo_impl = foo.unsafeGetStorageImpl();
  storages_.push_back({host, foo_impl, std::move(foo), host->data(), at::Tensor(), nullptr});
  return foo_impl;
}

namespace {
// Gives a CPU result turned into a foo tensor the dispatch keys of its new device, as _change_backend_component_keys
// does (~45 instructions); the same keys again get the same result from the thread's last conversion.
void toFooKeys(c10::TensorImpl& impl, KernelThreadState& state) {
  c10::DispatchKeySet& keys = KeySetRecord::of(impl);
  if (keys == state.converted_from) {
    keys = state.converted_to;
    return;
  }
  const c10::DispatchKeySet before = keys;
  impl._change_backend_component_keys(impl.device());
  state.converted_from = before;
  state.converted_to = keys;
}
}  // namespace

at::Tensor KernelScope::toDevice(at::Tensor result) {
  if (!result.defined() || result.device().type() == kFoo) return result;
  TORCH_CHECK_NOT_IMPLEMENTED(result.layout() == c10::kStrided, kSparseUnsupported, " (an op made a ",
                              result.layout(), " tensor)");
  c10::TensorImpl* impl = result.unsafeGetTensorImpl();
  c10::StorageImpl* foo = fooStorageFor(impl->unsafe_storage().unsafeGetStorageImpl());
  if (result.use_count() == 1 && typeid(*impl) == typeid(c10::TensorImpl) && impl->allow_tensor_metadata_change()) {
    // Nothing but the caller holds the kernel's result: turn it into the foo tensor (device, dispatch keys) instead
    // of building another TensorImpl, a good part of a small op's cost.
    if (impl->unsafe_storage().unsafeGetStorageImpl() != foo) {
      impl->set_storage_keep_dtype(holding(foo));
    } else {
      // Converted in place: set_storage_keep_dtype, the one setter of a TensorImpl's device, takes the storage's new
      // device from the impl's own storage, moved out and back (no reference counting).
      impl->set_storage_keep_dtype(std::move(const_cast<c10::Storage&>(impl->unsafe_storage())));
    }
    toFooKeys(*impl, *thread_);
    return result;
  }
  return makeTensor(holding(foo), c10::DispatchKey::PrivateUse1, result);
}

void KernelScope::commit(const at::Tensor& target, const at::Tensor& alias) {
  if (!target.defined() || target.device().type() != kFoo) return;
  c10::StorageImpl* host = storageOf(alias).unsafeGetStorageImpl();
  const StoragePair* lent = find(host);
  // The usual case, the alias lent for target still over the memory it was lent with, without a call.
  c10::StorageImpl* foo = lent != nullptr && host->data() == lent->host_data ? lent->foo : fooStorageFor(host);
  c10::TensorImpl* impl = target.unsafeGetTensorImpl();
  if (impl->unsafe_storage().unsafeGetStorageImpl() != foo) {
    impl->set_storage_keep_dtype(holding(foo));
  }
  if (!sameLayout(*impl, *alias.unsafeGetTensorImpl())) {
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
