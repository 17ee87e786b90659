"""Python-side registration of the foo backend; every step tolerates having been done already (autoload + import)."""
import torch

from .distributed import register_c10d_backend
from .ipc import register_ipc_reducers


def register_backend() -> None:
    torch.utils.rename_privateuse1_backend("foo")  # the same name again is allowed
    if not hasattr(torch, "foo"):
        from . import device_module

        torch._register_device_module("foo", device_module)
    if not hasattr(torch.Tensor, "is_foo"):
        torch.utils.generate_methods_for_privateuse1_backend(
            for_tensor=True, for_module=True, for_packed_sequence=True, for_storage=True
        )
    register_c10d_backend()
    register_ipc_reducers()


def check_kernel_registration() -> None:
    """Raises ImportError if a kernel family of the loaded library failed to register (the C++ side keeps the error,
    as throwing while the library loads would abort the process) or a kernel names an operator that does not exist."""
    errors = torch.ops.foo.registration_errors()
    if errors:
        raise ImportError("torch_foo: the foo backend's kernels did not register:\n  " + "\n  ".join(errors))
