// Copies between host and devices and between devices (copy_, .to(), .cpu(), .item()).
//
// Dense same-dtype copies are runtime memcpys on the current stream of the foo device involved (asynchronous with
// non_blocking and pinned host memory). Anything else (dtype conversion, broadcasting, strides) is converted by a
// kernel on whichever side can do it, then moved by a dense memcpy.
#include <ATen/ops/_copy_from_and_resize_native.h>
#include <ATen/ops/_local_scalar_dense_native.h>
#include <ATen/ops/_neg_view.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>

#include "foo/kernel_scope.h"
#include "foo/profiler.h"
#include "foo/registration.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

bool isFoo(const at::Tensor& t) { return t.device().type() == kFoo; }

// True when src and dst can be moved as one block of bytes.
bool isDenseMatch(const at::Tensor& src, const at::Tensor& dst) {
  return src.dtype() == dst.dtype() && src.sizes().equals(dst.sizes()) && src.is_contiguous() && dst.is_contiguous();
}

// Moves the bytes of a dense match on the stream of `device`; waits unless non_blocking was asked and possible.
void denseCopy(const at::Tensor& src, const at::Tensor& dst, c10::DeviceIndex device, bool non_blocking) {
  const size_t nbytes = src.nbytes();
  if (nbytes == 0) return;
  foo_rt::Stream stream = currentRuntimeStream(device);
  auto queue_copy = [&] { FOO_CHECK(foo_rt::memcpyAsync(dst.data_ptr(), src.const_data_ptr(), nbytes, stream)); };
  if (tracingKernels()) {
    traceCopy(device, dst.data_ptr(), src.const_data_ptr(), queue_copy);
  } else {
    queue_copy();
  }
  if (non_blocking) {
    // Keep both storages alive until the stream has done the copy (runs at once if the copy already completed).
    FOO_CHECK(foo_rt::launch(stream, [keep_src = src.storage(), keep_dst = dst.storage()] {}));
  } else {
    FOO_CHECK(foo_rt::streamSynchronize(stream));
  }
}

// A kernel on the foo device of `like`: src converted to dst's dtype and shape, contiguous.
at::Tensor contiguousOnDevice(const at::Tensor& src, const at::Tensor& dst, c10::DeviceIndex device) {
  KernelScope scope(device);
  at::Tensor converted = scope.alias(src)->to(dst.scalar_type()).expand(dst.sizes()).contiguous();
  return scope.toDevice(std::move(converted));
}

void copyWithinDevice(const at::Tensor& src, const at::Tensor& dst) {
  KernelScope scope(dst.device().index());
  scope.alias(dst)->copy_(*scope.alias(src));
}

void copyHostToDevice(const at::Tensor& src, const at::Tensor& dst, bool non_blocking) {
  const c10::DeviceIndex device = dst.device().index();
  if (isDenseMatch(src, dst)) return denseCopy(src, dst, device, non_blocking);
  at::Tensor staged = src.to(dst.scalar_type()).expand(dst.sizes()).contiguous();
  if (dst.is_contiguous()) return denseCopy(staged, dst, device, false);
  at::Tensor on_device = at::empty(dst.sizes(), dst.options());
  denseCopy(staged, on_device, device, false);
  copyWithinDevice(on_device, dst);
}

void copyDeviceToHost(const at::Tensor& src, const at::Tensor& dst, bool non_blocking) {
  const c10::DeviceIndex device = src.device().index();
  if (isDenseMatch(src, dst)) return denseCopy(src, dst, device, non_blocking);
  at::Tensor dense = contiguousOnDevice(src, dst, device);
  at::Tensor staged = at::empty(dst.sizes(), dst.options());
  denseCopy(dense, staged, device, false);
  dst.copy_(staged);
}

// Later work on `waiting` starts only after the work queued so far on `producer` (no host blocking).
void streamWaitStream(foo_rt::Stream waiting, foo_rt::Stream producer) {
  foo_rt::Event done = nullptr;
  FOO_CHECK(foo_rt::eventCreate(&done, foo_rt::kEventDisableTiming));
  foo_rt::Status status = foo_rt::eventRecord(done, producer);
  if (status == foo_rt::Status::Success) status = foo_rt::streamWaitEvent(waiting, done);
  foo_rt::eventDestroy(done);  // a pending wait keeps its own reference to the capture
  FOO_CHECK(status);
}

void copyAcrossDevices(const at::Tensor& src, const at::Tensor& dst, bool non_blocking) {
  // The destination's stream does the transfer after the source device's pending work.
  const foo_rt::Stream src_stream = currentRuntimeStream(src.device().index());
  FOO_CHECK(foo_rt::streamSynchronize(src_stream));
  const c10::DeviceIndex device = dst.device().index();
  if (isDenseMatch(src, dst)) {
    denseCopy(src, dst, device, non_blocking);
    // An asynchronous transfer still reads src: later writes to it on its own device must wait for the transfer.
    if (non_blocking) streamWaitStream(src_stream, currentRuntimeStream(device));
    return;
  }
  at::Tensor dense = contiguousOnDevice(src, dst, src.device().index());
  if (dst.is_contiguous()) return denseCopy(dense, dst, device, false);
  at::Tensor landed = at::empty(dst.sizes(), dst.options());
  denseCopy(dense, landed, device, false);
  copyWithinDevice(landed, dst);
}

bool hasMathBits(const at::Tensor& t) { return t.is_conj() || t.is_neg(); }

// The same memory and geometry without the lazy conjugate and negative bits: its raw stored values.
at::Tensor rawView(const at::Tensor& t) {
  if (!hasMathBits(t)) return t;
  c10::intrusive_ptr<c10::TensorImpl> impl = t.unsafeGetTensorImpl()->shallow_copy_and_detach(
      t.unsafeGetTensorImpl()->version_counter(), /*allow_tensor_metadata_change=*/true);
  impl->_set_conj(false);
  impl->_set_neg(false);
  return at::Tensor(std::move(impl));
}

at::Tensor copyFrom(const at::Tensor& self, const at::Tensor& dst, bool non_blocking);

// As CPU's copy_ does: move the stored values, then conjugate or negate the destination where its bits differ from
// the source's. (Conjugation and negation are their own inverses and commute, so the order does not matter.)
void copyHonouringMathBits(const at::Tensor& src, const at::Tensor& dst, bool non_blocking) {
  const at::Tensor raw_dst = rawView(dst);
  at::Tensor fixed = raw_dst;
  if (src.is_conj() != dst.is_conj()) fixed = fixed.conj();
  if (src.is_neg() != dst.is_neg()) fixed = at::_neg_view(fixed);
  const bool fix_up = !fixed.is_same(raw_dst);
  // The fix-up reads what the copy wrote: on the host it would not wait for a copy still queued on a stream.
  copyFrom(rawView(src), raw_dst, non_blocking && !fix_up);
  if (fix_up) raw_dst.copy_(fixed);  // a kernel on dst's device that resolves the bits in place
}

at::Tensor copyFrom(const at::Tensor& self, const at::Tensor& dst, bool non_blocking) {
  TORCH_CHECK(self.defined() && dst.defined(), "copy_: undefined tensor");
  if (dst.numel() == 0) {
    // Nothing to move, but the shapes must still broadcast: CPU's copy_ checks them (and raises CPU's errors) on
    // stand-ins of the same shapes and dtypes, the source one holding a single element.
    const auto cpu = dst.options().device(c10::kCPU);
    at::empty(dst.sizes(), cpu).copy_(at::empty_strided(self.sizes(), std::vector<int64_t>(self.dim(), 0),
                                                        self.options().device(c10::kCPU)));
    return dst;
  }
  if (isFoo(self) && isFoo(dst) && self.device() == dst.device()) {
    copyWithinDevice(self, dst);  // the CPU kernel on the aliases, which carry the bits
  } else if (hasMathBits(self) || hasMathBits(dst)) {
    copyHonouringMathBits(self, dst, non_blocking);
  } else if (isFoo(self) && isFoo(dst)) {
    copyAcrossDevices(self, dst, non_blocking);
  } else if (isFoo(dst)) {
    TORCH_CHECK(self.device().is_cpu(), "copy_ from ", self.device(), " to ", dst.device(), " is not supported");
    copyHostToDevice(self, dst, non_blocking);
  } else {
    TORCH_CHECK(dst.device().is_cpu(), "copy_ from ", self.device(), " to ", dst.device(), " is not supported");
    copyDeviceToHost(self, dst, non_blocking);
  }
  return dst;
}

at::Tensor copyFromAndResize(const at::Tensor& self, const at::Tensor& dst) {
  dst.resize_(self.sizes());
  return copyFrom(self, dst, false);
}

at::Scalar localScalarDense(const at::Tensor& self) {
  TORCH_CHECK(self.numel() == 1, "a Tensor with ", self.numel(), " elements cannot be converted to Scalar");
  at::Tensor host = at::empty({}, self.options().device(c10::kCPU));
  denseCopy(self.reshape({}), host, self.device().index(), false);
  return at::native::_local_scalar_dense_cpu(host);
}

}  // namespace

FOO_KERNELS(copy, m) {
  m.impl("_copy_from", TORCH_FN(copyFrom));
  m.impl("_copy_from_and_resize", TORCH_FN(copyFromAndResize));
  m.impl("_local_scalar_dense", TORCH_FN(localScalarDense));
}

// A lazily conjugated or negated tensor would otherwise be resolved before the copy by PyTorch's math-bit fallback,
// whose resolution is itself a copy: infinite recursion. copyFrom handles the bits (as CPU's copy_ does).
FOO_KERNELS_FOR_KEY(copy_conjugate, Conjugate, m) {
  m.impl("_copy_from", torch::CppFunction::makeFallthrough());
  m.impl("_copy_from_and_resize", torch::CppFunction::makeFallthrough());
}
FOO_KERNELS_FOR_KEY(copy_negative, Negative, m) {
  m.impl("_copy_from", torch::CppFunction::makeFallthrough());
  m.impl("_copy_from_and_resize", torch::CppFunction::makeFallthrough());
}

}  // namespace torch_foo
