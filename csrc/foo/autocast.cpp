// Automatic mixed precision: torch.autocast("foo") casts as it does on CUDA.
//
// Under autocast every foo op also dispatches through AutocastPrivateUse1. Ops without a policy fall through to their
// kernels; the others get CUDA's policies from ATen's shared lists: lower precision (matmuls, convolutions), float32
// (reductions, losses, norms), float32 with an optional dtype, and promotion to the widest input type.
// ATen/autocast_mode.h pulls in all of ATen, so this unit compiles slowly: nothing else includes it.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

namespace torch_foo {

// The op lists name their types unqualified (Tensor, Scalar, ScalarType, IntArrayRef) and the policies too.
using namespace at;
using namespace at::autocast;

namespace {

at::Tensor binaryCrossEntropyBanned(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, int64_t) {
  TORCH_CHECK(false,
              "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast (as on CUDA): "
              "combine the sigmoid and the loss with binary_cross_entropy_with_logits or BCEWithLogitsLoss instead");
}

}  // namespace

TORCH_LIBRARY_IMPL(_, AutocastPrivateUse1, m) { m.fallback(torch::CppFunction::makeFallthrough()); }

TORCH_LIBRARY_IMPL(aten, AutocastPrivateUse1, m) {
#define FOO_LOWER_PRECISION(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, lower_precision_fp)
  AT_FORALL_LOWER_PRECISION_FP(FOO_LOWER_PRECISION)
#undef FOO_LOWER_PRECISION
#define FOO_FP32(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, fp32)
  AT_FORALL_FP32(FOO_FP32)
#undef FOO_FP32
#define FOO_FP32_SET_OPT_DTYPE(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, fp32_set_opt_dtype)
  AT_FORALL_FP32_SET_OPT_DTYPE(FOO_FP32_SET_OPT_DTYPE)
#undef FOO_FP32_SET_OPT_DTYPE
  AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE(KERNEL_DIFFERENT_REDISPATCH_SIGNATURE_PRIVATEUSEONE)
#define FOO_PROMOTE(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, promote)
  AT_FORALL_PROMOTE(FOO_PROMOTE)
#undef FOO_PROMOTE
  m.impl(TORCH_SELECTIVE_NAME("aten::binary_cross_entropy"), TORCH_FN(binaryCrossEntropyBanned));
}

}  // namespace torch_foo
