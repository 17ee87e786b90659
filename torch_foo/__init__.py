"""torch_foo: a simulated accelerator under PyTorch as the ``foo`` device (PrivateUse1).

Importing compiles the C++ backend on first use (cached afterwards), loads it, renames PrivateUse1 to ``foo``,
registers ``torch.foo`` and generates ``Tensor.foo()``, ``Tensor.is_foo`` and friends. After an edit of the kernels
(csrc/kernels), ``torch_foo.reload()`` or ``importlib.reload(torch_foo)`` rebuilds them and swaps them in place.
"""
import sys
import warnings


def _autoload() -> None:
    """Entry point of group torch.backends, called by `import torch`.

    Importing this package did the work. If the backend could not be loaded (not built yet: no compilation inside
    `import torch`; or any error) it is left unloaded and forgotten, so a later `import torch_foo` builds it or raises
    the error. Defined before `import torch` because importing this package first imports torch, which calls back
    here while the package is still initialising.
    """
    if "library_path" in globals() and library_path is None:
        # Only the package: torch_foo._registration must remember what this process already loaded.
        del sys.modules[__name__]


import importlib.machinery  # noqa: E402

import torch  # noqa: E402

from . import _build, _registration  # noqa: E402
from ._build import BuildError  # noqa: E402,F401
from ._registration import KernelRegistrationError, RestartRequired  # noqa: E402,F401

__all__ = [
    "fallback_stats",
    "reset_fallback_stats",
    "fallback_policy",
    "set_fallback_policy",
    "library_path",
    "kernels_library_path",
    "reload",
    "BuildError",
    "KernelRegistrationError",
    "RestartRequired",
    "ops",
]


def reload() -> None:
    """Rebuild what changed in the kernels (csrc/kernels) and swap them, and the custom operators, in place.

    Existing foo tensors, modules, optimizers, streams and RNG state are untouched; the next call runs the new code.
    A compile error (BuildError) or a kernel the dispatcher refuses (KernelRegistrationError, with the file:line)
    leaves the previous kernels in use. An edit of the state library (the runtime, allocator, guard, hooks, generator,
    streams: csrc/ outside csrc/kernels) raises RestartRequired naming the files.
    """
    global kernels_library_path
    kernels_library_path = _load(build=True)


def _load(build: bool):
    """Load (building with build=True) the backend; the kernels library's path, or None if a build is missing."""
    specs = _build.backend_specs()
    _registration.check_state_unchanged(specs)
    find = _build.ensure_built if build else _build.find_built
    state_library = find(specs.state)
    kernels_library = find(specs.kernels) if state_library is not None else None
    if kernels_library is None:
        return None
    _registration.load(specs, state_library, kernels_library)
    return kernels_library


def _torch_is_importing() -> bool:
    """True while `import torch` runs its torch.backends entry points (this package's autoload)."""
    spec = getattr(sys.modules.get("torch"), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _imports_torch_foo_next() -> bool:
    """Whether the statement that imports torch imports torch_foo right after it (`import torch, torch_foo`): the
    autoload's "left disabled" warning would then precede a build that enables foo in the same line."""
    import dis

    machinery = ("<frozen", torch.__path__[0], __path__[0], importlib.machinery.__file__.rsplit("/", 1)[0])
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(machinery):
        frame = frame.f_back
    if frame is None:
        return False
    following = [i for i in dis.get_instructions(frame.f_code) if i.offset > frame.f_lasti]
    imports = [i.argval for i in following[:6] if i.opname == "IMPORT_NAME"]
    return bool(imports) and imports[0].split(".")[0] == __name__


class _SpecWatchingSources(importlib.machinery.ModuleSpec):
    """This package's spec once it is loaded. `import torch_foo` of a loaded package only asks the spec whether the
    package is still initialising: the moment to warn that the sources changed and the loaded code is stale."""

    @property
    def _initializing(self) -> bool:
        try:
            _registration.warn_if_stale(_build.backend_specs())
        except (_build.BuildError, OSError):
            pass  # a setting or the sources broke since the load: torch_foo.reload() says what
        return False

    @_initializing.setter
    def _initializing(self, value: bool) -> None:
        pass


def _watch_imports() -> None:
    spec = object.__new__(_SpecWatchingSources)
    spec.__dict__.update({k: v for k, v in vars(__spec__).items() if k != "_initializing"})
    sys.modules[__name__].__spec__ = spec


if _build.invoked_as_cli():
    library_path = kernels_library_path = None  # `python -m torch_foo` inspects, rebuilds or cleans the cache itself
elif not _torch_is_importing():
    kernels_library_path = _load(build=True)
    library_path = _registration._loaded.state_library
else:
    try:
        kernels_library_path = _load(build=False)
        problem = "no build of the foo backend matches the current sources" if kernels_library_path is None else None
    except Exception as error:  # noqa: BLE001  (any failure here would make `import torch` itself fail)
        kernels_library_path, problem = None, str(error).splitlines()[0].removeprefix("torch_foo: ")
    library_path = _registration._loaded.state_library if kernels_library_path is not None else None
    if problem is not None and not _imports_torch_foo_next():
        warnings.warn(
            f"torch_foo: `import torch` left foo disabled ({problem}); `import torch_foo` builds the backend "
            "if needed and enables foo, or raises the full error.",
            stacklevel=2,
        )

if kernels_library_path is not None:
    from . import ops  # noqa: F401  (fake kernels and autograd of the custom operators)
    from ._fallback import fallback_policy, fallback_stats, reset_fallback_stats, set_fallback_policy  # noqa: F401

    _watch_imports()
