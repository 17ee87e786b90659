// Automatic mixed precision: torch.autocast("foo") casts as it does on CUDA.
//
// Under autocast every foo op also dispatches through AutocastPrivateUse1. Ops without a policy fall through to their
// kernels; the others get CUDA's policies from ATen's shared lists: lower precision (matmuls, convolutions), float32
// (reductions, losses, norms), float32 with an optional dtype, and promotion to the widest input type.
// ATen's wrappers instantiate a template per op (over 20 s of compile); one boxed kernel per policy does the same
// casts, finding the tensors (and the dtype) among the arguments from the op's schema. Casting goes through ATen's
// autocast cache, as the wrappers do. ATen/autocast_mode.h includes all of ATen: nothing else includes this unit.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

namespace torch_foo {
namespace {

using at::autocast::CastPolicy;
constexpr c10::DeviceType kDevice = c10::DeviceType::PrivateUse1;

enum class ArgumentKind { Tensor, OptionalTensor, TensorList, Dtype, Other };

ArgumentKind kindOf(const c10::Argument& argument) {
  const c10::TypePtr& type = argument.type();
  const auto isTensor = [](const c10::TypePtr& t) { return t->kind() == c10::TypeKind::TensorType; };
  if (isTensor(type)) return ArgumentKind::Tensor;
  if (const auto optional = type->cast<c10::OptionalType>(); optional && isTensor(optional->getElementType())) {
    return ArgumentKind::OptionalTensor;
  }
  if (const auto list = type->cast<c10::ListType>(); list && isTensor(list->getElementType())) {
    return ArgumentKind::TensorList;
  }
  return argument.name() == "dtype" ? ArgumentKind::Dtype : ArgumentKind::Other;
}

// The type a policy casts floating-point foo tensors to (ATen's promote_type for `promote`: the widest of the
// tensors and tensor lists, optional tensors aside).
template <CastPolicy policy>
at::ScalarType castType(const std::vector<c10::Argument>& schema, const c10::IValue* args) {
  if constexpr (policy == CastPolicy::fp32) return at::kFloat;
  at::ScalarType type = at::autocast::get_lower_precision_fp_from_device_type(kDevice);
  if constexpr (policy == CastPolicy::promote) {
    for (size_t i = 0; i < schema.size(); ++i) {
      if (kindOf(schema[i]) == ArgumentKind::Tensor) {
        type = at::autocast::prioritize(type, args[i].toTensor(), kDevice);
      } else if (kindOf(schema[i]) == ArgumentKind::TensorList) {
        for (const at::Tensor& t : args[i].toTensorVector()) type = at::autocast::prioritize(type, t, kDevice);
      }
    }
  }
  return type;
}

template <CastPolicy policy>
void castAndRedispatch(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastPrivateUse1);
  const std::vector<c10::Argument>& schema = op.schema().arguments();
  c10::IValue* args = stack->data() + (stack->size() - schema.size());
  if constexpr (policy == CastPolicy::fp32_set_opt_dtype) {
    // An explicit dtype wins; without an eligible first tensor nothing changes (as ATen's wrapper).
    if (at::autocast::is_eligible(args[0].toTensor(), kDevice)) {
      for (size_t i = 0; i < schema.size(); ++i) {
        if (kindOf(schema[i]) == ArgumentKind::Dtype && args[i].isNone()) args[i] = at::kFloat;
      }
    }
  } else {
    const at::ScalarType type = castType<policy>(schema, args);
    for (size_t i = 0; i < schema.size(); ++i) {
      switch (kindOf(schema[i])) {
        case ArgumentKind::Tensor:
          args[i] = at::autocast::cached_cast(type, args[i].toTensor(), kDevice);
          break;
        case ArgumentKind::OptionalTensor:
          if (args[i].isTensor()) args[i] = at::autocast::cached_cast(type, args[i].toTensor(), kDevice);
          break;
        case ArgumentKind::TensorList:
          args[i] = at::autocast::cached_cast(type, at::TensorList(args[i].toTensorVector()), kDevice);
          break;
        default:
          break;
      }
    }
  }
  op.callBoxed(stack);
}

at::Tensor binaryCrossEntropyBanned(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, int64_t) {
  TORCH_CHECK(false,
              "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast (as on CUDA): "
              "combine the sigmoid and the loss with binary_cross_entropy_with_logits or BCEWithLogitsLoss instead");
}

}  // namespace

TORCH_LIBRARY_IMPL(_, AutocastPrivateUse1, m) { m.fallback(torch::CppFunction::makeFallthrough()); }

// The lists name an op as (name) or (name, overload).
#define FOO_OP_NAME_1(op) "aten::" #op
#define FOO_OP_NAME_2(op, overload) "aten::" #op "." #overload
#define FOO_ARGUMENT_COUNT(_1, _2, count, ...) count
#define FOO_OP_NAME(...) C10_CONCATENATE(FOO_OP_NAME_, FOO_ARGUMENT_COUNT(__VA_ARGS__, 2, 1))(__VA_ARGS__)
#define FOO_CAST(policy, ...) \
  m.impl(FOO_OP_NAME(__VA_ARGS__), torch::CppFunction::makeFromBoxedFunction<&castAndRedispatch<policy>>());

TORCH_LIBRARY_IMPL(aten, AutocastPrivateUse1, m) {
#define FOO_LOWER_PRECISION(...) FOO_CAST(CastPolicy::lower_precision_fp, __VA_ARGS__)
  AT_FORALL_LOWER_PRECISION_FP(FOO_LOWER_PRECISION)
#undef FOO_LOWER_PRECISION
#define FOO_FP32(...) FOO_CAST(CastPolicy::fp32, __VA_ARGS__)
  AT_FORALL_FP32(FOO_FP32)
#undef FOO_FP32
#define FOO_FP32_SET_OPT_DTYPE(...) FOO_CAST(CastPolicy::fp32_set_opt_dtype, __VA_ARGS__)
  AT_FORALL_FP32_SET_OPT_DTYPE(FOO_FP32_SET_OPT_DTYPE)
#undef FOO_FP32_SET_OPT_DTYPE
#define FOO_PROMOTE(...) FOO_CAST(CastPolicy::promote, __VA_ARGS__)
  AT_FORALL_PROMOTE(FOO_PROMOTE)
#undef FOO_PROMOTE
  // A few overloads (norm's) run as their overloads with a dtype: ATen's wrapper, one template each. The entries
  // name their types unqualified, and which types varies between torch versions.
  using namespace at;
  AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE(KERNEL_DIFFERENT_REDISPATCH_SIGNATURE_PRIVATEUSEONE)
  m.impl("aten::binary_cross_entropy", TORCH_FN(binaryCrossEntropyBanned));
}

}  // namespace torch_foo
