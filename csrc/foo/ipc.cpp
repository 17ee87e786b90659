// Sharing foo tensors between processes (torch.multiprocessing, as CUDA IPC): a storage's device memory exported by
// the runtime and opened in the receiving process as a foo storage over the same memory. torch_foo/ipc.py does the
// pickling, the descriptor passing and the lifetime (leases).
#include <ATen/core/Tensor.h>
#include <c10/core/TensorImpl.h>
#include <torch/library.h>
#include <unistd.h>

#include <tuple>

#include "foo/common.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

// (file descriptor, offset, bytes) of a foo tensor's storage, after the work queued on the current stream of its
// device: the receiver sees what the sender wrote before sending. The descriptor remains the runtime's.
std::tuple<int64_t, int64_t, int64_t> exportStorage(const at::Tensor& t) {
  TORCH_CHECK(t.defined() && t.device().type() == kFoo, "ipc_export: expected a foo tensor");
  TORCH_CHECK(t.layout() == c10::kStrided && !t.is_conj() && !t.is_neg() && !t._is_zerotensor(),
              "sharing a foo tensor between processes needs a strided tensor without lazy conjugate/negative/zero "
              "bits (resolve_conj() / resolve_neg() / clone() it first)");
  const c10::Storage& storage = t.storage();
  TORCH_CHECK(storage.nbytes() > 0, "ipc_export: the tensor's storage is empty");
  foo_rt::Stream stream = currentRuntimeStream(t.device().index());
  if (!foo_rt::detail::streamIdle(stream)) FOO_CHECK(foo_rt::streamSynchronize(stream));
  int fd = -1;
  std::size_t offset = 0;
  FOO_CHECK(foo_rt::ipcExport(storage.data(), &fd, &offset));
  return {fd, static_cast<int64_t>(offset), static_cast<int64_t>(storage.nbytes())};
}

// What an opened storage owns: the mapping and the lease that keeps the sender's memory allocated.
struct OpenedMemory {
  void* device_ptr;
  int lease_fd;
};

void closeOpenedMemory(void* context) {
  auto* memory = static_cast<OpenedMemory*>(context);
  foo_rt::ipcClose(memory->device_ptr);
  close(memory->lease_fd);  // the sender's reaper sees the lease end when every holder has closed it
  delete memory;
}

// A foo tensor over `nbytes` at `offset` of the sender's memory file `fd`, opened on `device`. Takes ownership of
// lease_fd when it succeeds; fd may be closed afterwards.
at::Tensor openStorage(int64_t fd, int64_t lease_fd, int64_t device, int64_t offset, int64_t nbytes,
                       c10::ScalarType dtype, c10::IntArrayRef size, c10::IntArrayRef stride, int64_t storage_offset) {
  checkDeviceIndex(device);
  TORCH_CHECK(offset >= 0 && nbytes > 0 && storage_offset >= 0, "ipc_open: bad offset/size");
  void* device_ptr = nullptr;
  FOO_CHECK(foo_rt::ipcOpen(static_cast<int>(device), static_cast<int>(fd), static_cast<std::size_t>(offset),
                            static_cast<std::size_t>(nbytes), &device_ptr));
  const c10::Device where(kFoo, static_cast<c10::DeviceIndex>(device));
  at::DataPtr data(device_ptr, new OpenedMemory{device_ptr, static_cast<int>(lease_fd)}, &closeOpenedMemory, where);
  c10::Storage storage(c10::Storage::use_byte_size_t(), static_cast<size_t>(nbytes), std::move(data),
                       /*allocator=*/nullptr, /*resizable=*/false);
  auto impl = c10::make_intrusive<c10::TensorImpl>(std::move(storage), c10::DispatchKeySet(c10::DispatchKey::PrivateUse1),
                                                   c10::scalarTypeToTypeMeta(dtype));
  impl->set_sizes_and_strides(size, stride, storage_offset);
  return at::Tensor(std::move(impl));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("ipc_export(Tensor self) -> (int, int, int)", &exportStorage);
  m.def("ipc_open(int fd, int lease_fd, int device, int offset, int nbytes, ScalarType dtype, int[] size, "
        "int[] stride, int storage_offset) -> Tensor",
        &openStorage);
}

}  // namespace torch_foo
