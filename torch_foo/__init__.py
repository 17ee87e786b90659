"""torch_foo: a simulated accelerator under PyTorch as the ``foo`` device (PrivateUse1).

Importing compiles the C++ backend on first use (cached afterwards), loads it, renames PrivateUse1 to ``foo``,
registers ``torch.foo`` and generates ``Tensor.foo()``, ``Tensor.is_foo`` and friends.
"""
import sys
import warnings


def _autoload() -> None:
    """Entry point of group torch.backends, called by `import torch`.

    Importing this package did the work. If the backend was not built yet it is left unloaded (no compilation inside
    `import torch`) and forgotten, so a later `import torch_foo` builds it. Defined before `import torch` because
    importing this package first imports torch, which calls back here while the package is still initialising.
    """
    if "library_path" in globals() and library_path is None:
        for name in [n for n in sys.modules if n == __name__ or n.startswith(__name__ + ".")]:
            del sys.modules[name]


import torch  # noqa: E402

from . import _build  # noqa: E402

__all__ = [
    "fallback_stats",
    "reset_fallback_stats",
    "fallback_policy",
    "set_fallback_policy",
    "library_path",
    "ops",
]


def _torch_is_importing() -> bool:
    """True while `import torch` runs its torch.backends entry points (this package's autoload)."""
    spec = getattr(sys.modules.get("torch"), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


_spec = _build.backend_spec()
if _build.invoked_as_cli():
    library_path = None  # `python -m torch_foo` inspects, rebuilds or cleans the cache itself
elif _torch_is_importing():
    library_path = _build.find_built(_spec)
else:
    library_path = _build.ensure_built(_spec)

if library_path is None and not _build.invoked_as_cli():
    warnings.warn(
        "torch_foo: no build of the foo backend matches the current sources, so `import torch` left foo disabled "
        "rather than compile inside it; `import torch_foo` compiles it (once) and enables foo.",
        stacklevel=2,
    )
elif library_path is not None:
    torch.ops.load_library(str(library_path))

    from ._registration import check_kernel_registration, register_backend

    check_kernel_registration()
    register_backend()

    from . import ops  # noqa: F401  (fake kernels and autograd of the custom operators)
    from ._fallback import fallback_policy, fallback_stats, reset_fallback_stats, set_fallback_policy  # noqa: F401
