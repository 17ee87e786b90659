"""Python-side registration of the foo backend; every step tolerates having been done already (autoload + import)."""
import torch


def register_backend() -> None:
    torch.utils.rename_privateuse1_backend("foo")  # the same name again is allowed
    if not hasattr(torch, "foo"):
        from . import device_module

        torch._register_device_module("foo", device_module)
    if not hasattr(torch.Tensor, "is_foo"):
        torch.utils.generate_methods_for_privateuse1_backend(
            for_tensor=True, for_module=True, for_packed_sequence=True, for_storage=True
        )
