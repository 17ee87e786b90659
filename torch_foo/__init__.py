"""torch_foo: a simulated accelerator under PyTorch as the ``foo`` device (PrivateUse1).

Importing compiles the C++ backend on first use (cached afterwards), loads it, renames PrivateUse1 to ``foo``,
registers ``torch.foo`` and generates ``Tensor.foo()``, ``Tensor.is_foo`` and friends.
"""
import torch

from . import _build

__all__ = [
    "fallback_stats",
    "reset_fallback_stats",
    "fallback_policy",
    "set_fallback_policy",
    "library_path",
]

library_path = _build.ensure_built(_build.backend_spec())
torch.ops.load_library(str(library_path))

from ._registration import register_backend  # noqa: E402

register_backend()

from ._fallback import fallback_policy, fallback_stats, reset_fallback_stats, set_fallback_policy  # noqa: E402
from . import ops  # noqa: E402,F401  (fake kernels and autograd of the custom ops)
