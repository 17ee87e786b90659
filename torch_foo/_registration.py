"""Loading the backend into this process, and swapping its kernels in place on reload.

The state library (runtime, allocator, guard, hooks, generator, streams; csrc/ without csrc/kernels) is loaded once:
tensors, streams, events and generators refer to it. The kernels library (csrc/kernels) registers nothing while it
loads; torch.ops.foo.install_kernels(path) then withdraws the kernels installed before and registers its own, or
keeps the previous ones and raises (csrc/foo/registration.h). A replaced kernels library stays mapped (the dispatcher
keeps pointers into it, see installKernels), so a process maps the state library plus one kernels library per
distinct build it loaded: reloading unchanged sources, or sources reverted to a build loaded before, maps nothing new.
The c10d backend's library (csrc/distributed) is loaded by the first process group on foo (load_distributed).
"""
from __future__ import annotations

import atexit
import copyreg
import ctypes
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import _build, _compile_hooks
from .distributed import register_c10d_backend
from .ipc import register_ipc_reducers


class RestartRequired(ImportError):
    """The sources of the state library changed: loading them needs a new Python process."""


class KernelRegistrationError(ImportError):
    """The dispatcher refused a kernel of the new kernels library; the previous kernels stay in use."""


@dataclass
class _Loaded:
    state_library: Path
    state_digests: dict[str, str]  # what the state library was built from
    kernels_library: Path | None = None
    warned_for: Path | None = None  # the kernels library the sources make, which a stale-code warning named


_loaded: _Loaded | None = None
_distributed_library: Path | None = None  # the c10d backend's library, once a process group needed it
_distributed_lock = threading.Lock()


def register_backend() -> None:
    """The Python side; every step tolerates having been done already (autoload + import, reload)."""
    torch.utils.rename_privateuse1_backend("foo")  # the same name again is allowed
    if not hasattr(torch, "foo"):
        from . import device_module

        torch._register_device_module("foo", device_module)
    if not hasattr(torch.Tensor, "is_foo"):
        torch.utils.generate_methods_for_privateuse1_backend(
            for_tensor=True, for_module=True, for_packed_sequence=True, for_storage=True
        )
    copyreg.pickle(torch.Generator, _reduce_generator)
    _compile_hooks.install()
    register_c10d_backend()
    atexit.unregister(_drain_autograd_device_threads)
    atexit.register(_drain_autograd_device_threads)
    register_ipc_reducers()


def _drain_autograd_device_threads() -> None:
    """At exit, before the interpreter finalizes: an autograd device thread still releasing a finished backward's
    graph (Python objects inside) after finalization began would abort the process (see the C++ side)."""
    torch.ops.foo.drain_autograd_device_threads()


def _reduce_generator(generator: torch.Generator):
    """pickle and copy.deepcopy of a torch.Generator: a foo generator as a CPU one, by seed and state (its engine is a
    CPU generator, whose whole position is its state). torch's own __reduce__ asks every non-CPU generator for a
    Philox offset, which foo generators do not have; other generators keep it."""
    if generator.device.type != "foo":
        return generator.__reduce__()
    return _rebuild_generator, (generator.device, generator.initial_seed(), generator.get_state())


def _rebuild_generator(device: torch.device, seed: int, state: torch.Tensor) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    generator.set_state(state)
    return generator


def load(specs: _build.BackendSpecs, state_library: Path, kernels_library: Path) -> None:
    """Load the state library (once per process) and install the kernels library's kernels."""
    global _loaded
    if _loaded is None:
        torch.ops.load_library(str(state_library))
        _loaded = _Loaded(state_library, _build.source_digests(specs.state))
    elif state_library != _loaded.state_library:
        raise RestartRequired(_restart_message(specs.state))
    _install_kernels(kernels_library, specs.kernels)
    register_backend()  # after the kernels: a backend whose kernels did not register stays invisible


def load_distributed() -> None:
    """Build (the first time, under the build lock: one unit) and load the c10d backend's library, once per process.
    It links against the state library, so an edited state library needs a restart first, as for the kernels."""
    global _distributed_library
    with _distributed_lock:
        if _distributed_library is not None:
            return
        specs = _build.backend_specs()
        check_state_unchanged(specs)
        library = _build.ensure_built(specs.distributed)
        torch.ops.load_library(str(library))
        _distributed_library = library


def check_state_unchanged(specs: _build.BackendSpecs) -> None:
    """Raise RestartRequired if the state library's sources differ from those of the loaded one."""
    if _loaded is not None and _build.source_digests(specs.state) != _loaded.state_digests:
        raise RestartRequired(_restart_message(specs.state))


def loaded_kernels_library() -> Path | None:
    return _loaded.kernels_library if _loaded is not None else None


def warn_if_stale(specs: _build.BackendSpecs) -> None:
    """Warn (once per edit) when the sources no longer match the loaded kernels: `import torch_foo` again in a live
    session does not reload them."""
    if _loaded is None or _loaded.kernels_library is None:
        return
    current = _build.planned_library(specs.kernels)
    if current is None or current in (_loaded.kernels_library, _loaded.warned_for):
        return
    _loaded.warned_for = current
    warnings.warn(
        "torch_foo: the C++ sources changed since the foo backend was loaded, and `import torch_foo` does not load "
        "them again: this process still runs the old code. Call torch_foo.reload() (or importlib.reload(torch_foo)) "
        "to rebuild and swap in the new kernels.",
        stacklevel=3,
    )


def _restart_message(state_spec: _build.BuildSpec) -> str:
    now = _build.source_digests(state_spec)
    before = _loaded.state_digests
    changed = sorted(name for name in now.keys() | before.keys() if now.get(name) != before.get(name))
    source_dir = Path(state_spec.source_dir).resolve()
    files = "\n".join(f"  {source_dir / name}" + ("" if name in now else " (deleted)") for name in changed)
    return (
        "torch_foo: this change needs a restart of the Python process. These files belong to the state library "
        "(runtime, allocator, guard, hooks, generator, streams), which is loaded once per process because existing "
        f"tensors, streams and generators live in it:\n{files}\n"
        f"Only the kernels under {source_dir / _build.KERNELS_DIR} can be reloaded in place. The running process "
        "keeps working with the code it loaded."
    )


def _install_kernels(library: Path, kernels_spec: _build.BuildSpec) -> None:
    if _loaded.kernels_library == library:
        return
    ctypes.CDLL(str(library))  # its static initialisers declare its kernel families (once per process)
    try:
        torch.ops.foo.install_kernels(str(library))
    except RuntimeError as error:
        kept = "the previously loaded kernels stay in use" if _loaded.kernels_library else "foo has no kernels"
        raise KernelRegistrationError(
            f"torch_foo: the foo backend's kernels did not register ({kept}):\n  "
            + _build.name_sources(str(error), kernels_spec)
        ) from None
    _loaded.kernels_library = library
    _forget_operator_lookups()


def _forget_operator_lookups() -> None:
    """torch.ops.foo caches an operator handle per name; one whose definition was withdrawn and made again must be
    looked up afresh."""
    namespace = torch.ops.foo
    for name, value in list(vars(namespace).items()):
        if isinstance(value, torch._ops.OpOverloadPacket):
            delattr(namespace, name)


def mapped_backend_libraries() -> list[str]:
    """Files of the backend's libraries mapped into this process (for tests and diagnostics)."""
    names = set()
    with open(f"/proc/{os.getpid()}/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            path = fields[5].strip() if len(fields) == 6 else ""
            if Path(path).name.startswith(
                tuple(f"{name}-" for name in (_build.STATE_LIBRARY, _build.KERNELS_LIBRARY, _build.DISTRIBUTED_LIBRARY))
            ):
                names.add(path)
    return sorted(names)
