"""Just-in-time build of the C++ backend into a per-user cache keyed by what went into it.

The first import compiles the sources with torch.utils.cpp_extension.load (ninja); every later import finds the
finished library by its key and loads it without importing torch.utils.cpp_extension or spawning any process.

The backend is three libraries (backend_specs): the state library (csrc/ without csrc/kernels and csrc/distributed:
the runtime, allocator, guard, hooks, generator, streams), loaded once per process; the kernels library
(csrc/kernels), linked against it, which torch_foo.reload() rebuilds and swaps in a running process; and the c10d
backend (csrc/distributed), also linked against the state library, which only the first process group on foo builds
and loads (torch_foo/distributed.py), so that `import torch_foo` does not compile c10d's headers.

Cache layout under the build root ($TORCH_FOO_BUILD_DIR, else $TORCH_EXTENSIONS_DIR/torch_foo, else
~/.cache/torch_foo):

    .torch_foo                             marks the root (and each directory below it) as made by torch_foo
    compilers/<fingerprint>.txt            `$CXX --version`, keyed by the compiler binaries' path, size and mtime
    <toolchain_key>.lock                   build lock (an OS lock: released by the kernel if the holder dies)
    <toolchain_key>/src/                   snapshot of the sources the last build compiled (what the hash describes)
    <toolchain_key>/build.ninja, *.o       cpp_extension's working directory; objects survive source edits
    <toolchain_key>/build.log              output of the last ninja run
    <toolchain_key>/lib/<name>-<source_hash>.so     finished libraries, the newest ARTIFACTS_KEPT of them
    <toolchain_key>/lib/<name>-<source_hash>.json   manifest (size, sha256), written last: marks the .so complete

The toolchain key hashes the flags, torch's version and git revision, the Python ABI and the compiler's identity; the
source hash covers every source and header under the source directory (and the hash of the library linked against).

Environment: TORCH_FOO_BUILD_DIR / TORCH_EXTENSIONS_DIR (build root, above); TORCH_FOO_SOURCE_DIR (the backend's C++
sources instead of the package's or the repository's csrc/); TORCH_FOO_SANITIZE=address,undefined (any of address,
undefined, thread: a separate, instrumented build); CXX (compiler, default c++); MAX_JOBS (ninja -j);
TORCH_FOO_QUIET=1 (no progress output); TORCH_FOO_VERBOSE=1 (ninja -v: full command lines).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.machinery
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

# Bump when the build recipe below changes, so caches made by an older recipe are not reused.
_RECIPE_VERSION = 2
ARTIFACTS_KEPT = 3
COMPILED_SUFFIXES = (".cpp", ".cu")  # cpp_extension compiles .cu with nvcc
HASHED_SUFFIXES = (".cpp", ".cu", ".h", ".hpp", ".cuh")
SANITIZERS = ("address", "undefined", "thread")
STATE_LIBRARY = "torch_foo_C"
KERNELS_LIBRARY = "torch_foo_kernels"
KERNELS_DIR = "kernels"
DISTRIBUTED_LIBRARY = "torch_foo_distributed"
DISTRIBUTED_DIR = "distributed"
PRECOMPILED_HEADER = "foo/precompiled.h"
MARKER = ".torch_foo"  # in every directory torch_foo creates in the build root; `clean --all` deletes only those
_DIGEST_CHUNK = 1 << 20
# Static registrations cannot be withdrawn, so a reloadable library must not have any.
_STATIC_REGISTRATION = re.compile(r"^[ \t]*(TORCH_LIBRARY(?:_IMPL|_FRAGMENT)?)\s*\(", re.MULTILINE)


class BuildError(ImportError):
    """The backend could not be built, or its cache cannot be trusted."""


@dataclass(frozen=True)
class BuildSpec:
    name: str  # library name
    source_dir: Path  # hashed; excluded: tests/, hidden and CMake build directories
    extra_cflags: tuple[str, ...] = ()
    extra_ldflags: tuple[str, ...] = ()
    build_root: Path | None = None  # None: $TORCH_FOO_BUILD_DIR, $TORCH_EXTENSIONS_DIR/torch_foo, ~/.cache/torch_foo
    compiled_dirs: tuple[str, ...] = ()  # subdirectories whose sources are compiled; () for all
    excluded_dirs: tuple[str, ...] = ()  # subdirectories neither compiled nor hashed
    links: BuildSpec | None = None  # a library this one is linked against (built first)
    reloadable: bool = False  # refuse static TORCH_LIBRARY blocks in the compiled sources
    exception_probe: str | None = None  # op "ns::name(int[])" that must raise a formatted C++ error as RuntimeError
    # A header under source_dir that GCC compiles once per library and that each unit including (itself or through
    # the sources' headers) any header it lists includes first: parsing torch's headers is most of a unit's compile
    # time. Units that include none of them (the torch-free runtime) compile faster without it.
    precompiled_header: str | None = None


class BackendSpecs(NamedTuple):
    state: BuildSpec
    kernels: BuildSpec
    distributed: BuildSpec  # built on first use, not by `import torch_foo`


@dataclass(frozen=True)
class _Plan:
    """A spec resolved against the current sources and toolchain."""

    spec: BuildSpec
    root: Path
    source_dir: Path
    compiled: tuple[str, ...]  # the translation units, relative to source_dir
    digests: dict[str, str]  # relative path -> sha256 of every hashed file
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    compiler: tuple[str, ...]
    compiler_version: str
    toolchain_key: str
    source_hash: str

    @property
    def workdir(self) -> Path:
        return self.root / self.toolchain_key

    @property
    def snapshot_dir(self) -> Path:
        return self.workdir / "src"

    @property
    def lib_dir(self) -> Path:
        return self.workdir / "lib"

    @property
    def lock_path(self) -> Path:
        # Beside the working directory, not in it, so `clean` can delete the directory while holding the lock.
        return self.root / f"{self.toolchain_key}.lock"

    @property
    def artifact(self) -> Path:
        return self.lib_dir / f"{self.spec.name}-{self.source_hash}.so"

    @property
    def manifest(self) -> Path:
        return self.artifact.with_suffix(".json")


# ----------------------------------------------------------------------------------------------------------- public API


def backend_specs() -> BackendSpecs:
    """The real backend: csrc/ from $TORCH_FOO_SOURCE_DIR, the installed package or the repository; -O2 and sanitizers
    from $TORCH_FOO_SANITIZE (e.g. "address,undefined")."""
    sanitize = _sanitizer_flags(os.environ.get("TORCH_FOO_SANITIZE", ""))
    # A small op crosses a dozen of our functions. Without these, each call to one of them or to torch goes through the
    # PLT, and -fPIC's assumption that exported functions may be interposed keeps them from being inlined even within a
    # file: about a third of foo's per-op overhead (benchmarks/bench_ops.py --stages).
    call_flags = ("-fno-semantic-interposition", "-fno-plt")
    # PyTorch's own libraries are built with NDEBUG: without it, the c10/ATen headers' debug-only assertions run in
    # every accessor our kernels call (a device's validity checked at each c10::Device made, and so on). Sanitized
    # builds keep them, as checks. (Not -mtls-dialect=gnu2 either: glibc before 2.40 lets the first access to a
    # thread-local on a new thread clobber the caller's vector registers through TLS descriptors, glibc bug 31372;
    # libstdc++'s call_once on our stream workers crashed with it.)
    release = () if sanitize else ("-DNDEBUG",)
    common = dict(source_dir=_backend_source_dir(), extra_cflags=("-O2", *release, *call_flags, *sanitize),
                  extra_ldflags=("-Wl,-Bsymbolic-functions", *sanitize),
                  precompiled_header=PRECOMPILED_HEADER)
    state = BuildSpec(
        name=STATE_LIBRARY, excluded_dirs=(KERNELS_DIR, DISTRIBUTED_DIR), exception_probe="foo::raise_formatted_error",
        **common,
    )
    kernels = BuildSpec(name=KERNELS_LIBRARY, compiled_dirs=(KERNELS_DIR,), excluded_dirs=(DISTRIBUTED_DIR,),
                        links=state, reloadable=True, **common)
    distributed = BuildSpec(name=DISTRIBUTED_LIBRARY, compiled_dirs=(DISTRIBUTED_DIR,), excluded_dirs=(KERNELS_DIR,),
                            links=state, **common)
    return BackendSpecs(state, kernels, distributed)


def library_path(spec: BuildSpec) -> Path:
    """The library for the current key; it may not exist yet."""
    return _plan(spec, probe_compiler=True).artifact


def planned_library(spec: BuildSpec) -> Path | None:
    """The library the current sources make, built or not, found without spawning a process; None if the compiler
    was never probed."""
    plan = _plan(spec, probe_compiler=False)
    return plan.artifact if plan is not None else None


def name_sources(text: str, spec: BuildSpec) -> str:
    """text with the build's snapshot of the sources (what __FILE__ names in the library) replaced by the source
    directory. Not done with -ffile-prefix-map: a flag naming the source directory would make every copy of the
    sources rebuild everything in the shared build directory."""
    plan = _plan(spec, probe_compiler=False)
    return text if plan is None else text.replace(f"{plan.snapshot_dir}/", f"{plan.source_dir}/")


def source_digests(spec: BuildSpec) -> dict[str, str]:
    """sha256 of each source and header the spec's library is built from, by path relative to its source directory."""
    return _scan_sources(spec)[1]


def find_built(spec: BuildSpec) -> Path | None:
    """The finished, intact library for the current key, or None. Spawns no process."""
    plan = _plan(spec, probe_compiler=False)
    if plan is None or not _is_intact(plan):
        return None
    return plan.artifact


def ensure_built(spec: BuildSpec) -> Path:
    return find_built(spec) or build(spec)


def build(spec: BuildSpec, force: bool = False) -> Path:
    """Build the library unless another process already has; force=True recompiles every translation unit.
    Returns the library, named after the hash of the sources it was compiled from."""
    linked = ensure_built(spec.links) if spec.links is not None else None
    ninja = _find_ninja()
    plan = _plan(spec, probe_compiler=True)
    _make_private_dirs(plan.root, plan.workdir)
    with _build_lock(plan):
        if not force and _is_intact(plan):
            return plan.artifact
        _make_private_dirs(plan.root, plan.lib_dir)
        _check_tree_trusted(plan.workdir)
        if force:
            _remove_build_outputs(plan.workdir)
        rebuilding = any(plan.lib_dir.glob("*.json"))
        _say(
            f"torch_foo: {'recompiling what changed in' if rebuilding else 'compiling'} {spec.name} "
            f"{'' if rebuilding else '(first import only, a few minutes on 2 cores) '}in {plan.workdir} ..."
        )
        plan = _snapshot_sources(plan)  # sources edited from now on do not change what this build compiles
        library = _compile(ninja, plan, linked)
        if spec.exception_probe:
            _check_exceptions_reach_python(plan, library, linked)
        _publish(plan, library)
        _prune(plan.lib_dir)
        return plan.artifact


def clean(spec: BuildSpec, everything: bool = False) -> tuple[list[Path], list[Path]]:
    """Delete the build directory of spec's toolchain, or with everything=True every directory torch_foo made in the
    build root. Returns (removed, kept): kept are the root's entries that torch_foo did not make, left alone."""
    root = _build_root(spec)
    if not os.path.lexists(root):
        return [], []
    with _open_trusted_root(root) as root_fd:
        entries = sorted(os.listdir(root_fd))
        if everything:
            targets = [name for name in entries if _made_by_torch_foo(root_fd, name)]
        else:
            key = _plan(spec, probe_compiler=True).toolchain_key
            targets = [key] if _is_real_dir_at(root_fd, key) else []
        kept = [root / name for name in entries
                if name not in targets and name != MARKER and not _is_lock_of(name, targets)]
        from filelock import FileLock

        removed = []
        for name in targets:
            lock_name = f"{name}.lock"  # toolchain directories have one; compilers/ does not
            lock = FileLock(str(root / lock_name)) if lock_name in entries else contextlib.nullcontext()
            with lock:
                if _is_real_dir_at(root_fd, name):
                    shutil.rmtree(name, dir_fd=root_fd)  # fd-based: follows no symlink inside
                    removed.append(root / name)
            if lock_name in entries:
                os.unlink(lock_name, dir_fd=root_fd)
                removed.append(root / lock_name)
    return removed, kept


def info(spec: BuildSpec) -> dict:
    """What the cache key is made of and whether a build for it is cached; builds nothing."""
    plan = _plan(spec, probe_compiler=True)
    return {
        "name": spec.name,
        "torch": torch.__version__,
        "torch_git": torch.version.git_version,
        "python_abi": _python_abi(),
        "compiler": shlex.join(plan.compiler),
        "compiler_path": os.path.realpath(shutil.which(plan.compiler[0])),
        "compiler_version": plan.compiler_version.splitlines()[0] if plan.compiler_version else "",
        "cflags": list(plan.cflags),
        "ldflags": list(plan.ldflags),
        "source_dir": str(plan.source_dir),
        "build_root": str(plan.root),
        "build_dir": str(plan.workdir),
        "key": f"{plan.toolchain_key}-{plan.source_hash}",
        "toolchain_key": plan.toolchain_key,
        "source_hash": plan.source_hash,
        "library": str(plan.artifact),
        "cached": _is_intact(plan),
    }


def invoked_as_cli() -> bool:
    """True while `python -m torch_foo` imports the package: the CLI must work without (or despite) the backend."""
    if sys.argv[:1] != ["-m"]:  # runpy leaves "-m" in argv[0] only while it imports the target's packages
        return False
    args = sys.orig_argv
    return any(a == "-mtorch_foo" or (a == "-m" and args[i + 1 : i + 2] == ["torch_foo"]) for i, a in enumerate(args))


# ------------------------------------------------------------------------------------------------------- key and plan


def _plan(spec: BuildSpec, probe_compiler: bool) -> _Plan | None:
    """Resolve spec. Without probe_compiler, None when the compiler's version is not cached (so nothing can be)."""
    root = _build_root(spec)
    source_dir = Path(spec.source_dir).resolve()
    compiled, digests = _scan_sources(spec)
    compiler = tuple(shlex.split(os.environ.get("CXX", "c++")))  # what cpp_extension uses
    compiler_version = _compiler_version(root, compiler, probe_compiler)
    if compiler_version is None:
        return None
    link_hash = ""
    if spec.links is not None:
        linked = _plan(spec.links, probe_compiler)
        if linked is None:
            return None
        link_hash = linked.source_hash
    # cpp_extension adds -fPIC, -std=c++20, torch's and Python's include directories and torch's libraries.
    cflags = (
        # Match torch's libstdc++ ABI; cpp_extension stopped passing it once torch became cxx11-ABI only.
        f"-D_GLIBCXX_USE_CXX11_ABI={int(getattr(torch._C, '_GLIBCXX_USE_CXX11_ABI', True))}",
        *spec.extra_cflags,
    )
    # --no-undefined: a symbol nothing defines fails the link, with its name, instead of the later import.
    ldflags = ("-shared", "-Wl,--no-undefined", *spec.extra_ldflags)
    toolchain = {
        "recipe": _RECIPE_VERSION,
        "name": spec.name,
        "cflags": cflags,
        "ldflags": ldflags,
        "torch": torch.__version__,
        "torch_git": torch.version.git_version,
        "python_abi": _python_abi(),
        "compiler": compiler,
        "compiler_version": compiler_version,
    }
    return _Plan(
        spec=spec,
        root=root,
        source_dir=source_dir,
        compiled=compiled,
        digests=digests,
        cflags=cflags,
        ldflags=ldflags,
        compiler=compiler,
        compiler_version=compiler_version,
        toolchain_key=_short_hash(json.dumps(toolchain, sort_keys=True).encode()),
        source_hash=_source_hash(digests, link_hash),
    )


def _build_root(spec: BuildSpec) -> Path:
    if spec.build_root is not None:
        root = Path(spec.build_root)
    elif os.environ.get("TORCH_FOO_BUILD_DIR"):
        root = Path(os.environ["TORCH_FOO_BUILD_DIR"])
    elif os.environ.get("TORCH_EXTENSIONS_DIR"):
        root = Path(os.environ["TORCH_EXTENSIONS_DIR"]) / "torch_foo"
    else:
        root = Path.home() / ".cache" / "torch_foo"
    return Path(os.path.abspath(root.expanduser()))


def _backend_source_dir() -> Path:
    if os.environ.get("TORCH_FOO_SOURCE_DIR"):
        return Path(os.environ["TORCH_FOO_SOURCE_DIR"])
    package_dir = Path(__file__).resolve().parent
    shipped = package_dir / "_csrc"  # a non-editable install ships csrc/ here
    return shipped if shipped.is_dir() else package_dir.parent / "csrc"


def _sanitizer_flags(requested: str) -> tuple[str, ...]:
    names = {name.strip() for name in requested.split(",") if name.strip()}
    if unknown := names - set(SANITIZERS):
        raise BuildError(f"TORCH_FOO_SANITIZE: unknown sanitizer(s) {sorted(unknown)}; choose from {list(SANITIZERS)}")
    if not names:
        return ()
    ordered = ",".join(name for name in SANITIZERS if name in names)
    return (f"-fsanitize={ordered}", "-fno-omit-frame-pointer", "-g")


def _python_abi() -> str:
    return importlib.machinery.EXTENSION_SUFFIXES[0].strip(".").removesuffix(".so")  # e.g. cpython-311-x86_64-linux-gnu


def _is_excluded_dir(path: Path) -> bool:
    """Test sources (the runtime's GoogleTest suite), hidden directories and CMake build trees; nothing else, so a
    source directory named e.g. builders/ is compiled and hashed."""
    name = path.name
    return name == "tests" or name.startswith(".") or name == "CMakeFiles" or (path / "CMakeCache.txt").exists()


def _hashed_files(source_dir: Path, excluded_dirs: tuple[str, ...] = ()) -> list[str]:
    """Every source and header under source_dir that the build depends on, relative to it, in a stable order."""
    hashed = []
    excluded = {source_dir / name for name in excluded_dirs}
    for dirpath, dirnames, filenames in os.walk(source_dir):
        directory = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if directory / d not in excluded and not _is_excluded_dir(directory / d))
        relative = directory.relative_to(source_dir)
        hashed += [(relative / f).as_posix() for f in sorted(filenames) if f.endswith(HASHED_SUFFIXES)]
    return hashed


# path -> ((inode, size, mtime_ns, ctime_ns), sha256): the state and kernels libraries hash the same headers, and a
# warm import hashes each file once. ctime cannot be set back, so an edit always misses the cache.
_digest_cache: dict[str, tuple[tuple[int, int, int, int], str]] = {}


def _cached_digest(path: Path) -> str:
    st = os.stat(path)
    signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    cached = _digest_cache.get(str(path))
    if cached is not None and cached[0] == signature:
        return cached[1]
    digest = _file_sha256(path)
    _digest_cache[str(path)] = (signature, digest)
    return digest


def _scan_sources(spec: BuildSpec) -> tuple[tuple[str, ...], dict[str, str]]:
    """The translation units of spec (relative paths) and the sha256 of every source and header it depends on."""
    source_dir = Path(spec.source_dir).resolve()
    if not source_dir.is_dir():
        raise BuildError(f"torch_foo: the C++ source directory {source_dir} does not exist")
    hashed = _hashed_files(source_dir, spec.excluded_dirs)
    digests = {name: _cached_digest(source_dir / name) for name in hashed}
    prefixes = tuple(f"{d}/" for d in spec.compiled_dirs)
    compiled = tuple(
        name for name in hashed if name.endswith(COMPILED_SUFFIXES) and (not prefixes or name.startswith(prefixes))
    )
    if not compiled:
        raise BuildError(f"torch_foo: no C++ sources ({', '.join(COMPILED_SUFFIXES)}) under {source_dir}")
    return compiled, digests


def _source_hash(digests: dict[str, str], link_hash: str) -> str:
    digest = hashlib.sha256(f"links\0{link_hash}\0".encode())
    for name, file_digest in digests.items():
        digest.update(f"{name}\0{file_digest}\0".encode())
    return digest.hexdigest()[:16]


def _compiler_version(root: Path, compiler: tuple[str, ...], probe: bool) -> str | None:
    """`compiler --version`, cached on disk under a fingerprint of the binaries so a warm import spawns nothing."""
    found = [shutil.which(word) for word in compiler]
    if found[0] is None:
        raise BuildError(
            f"torch_foo: the C++ compiler {compiler[0]!r} was not found; install one (e.g. `apt-get install g++`) "
            "or point $CXX at it"
        )
    binaries = [os.path.realpath(path) for path in found if path]
    fingerprint = [compiler, [(path, (st := os.stat(path)).st_size, st.st_mtime_ns) for path in binaries]]
    cache_dir = root / "compilers"
    cached = cache_dir / f"{_short_hash(json.dumps(fingerprint).encode())}.txt"
    if cached.is_file():
        _check_root_secure(root)
        for path in (cache_dir, cached):
            _check_secure(path)
        return cached.read_text()
    if not probe:
        return None
    try:
        version = subprocess.run([*compiler, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise BuildError(f"torch_foo: `{shlex.join(compiler)} --version` failed: {error}") from error
    _make_private_dirs(root, cache_dir)
    _write_atomically(cached, version.encode())
    return version


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ trust and integrity

_REFUSAL_ADVICE = "a library built or loaded there could run another user's code in this process."


def _check_secure(path: Path, st: os.stat_result | None = None) -> None:
    """Refuse a path (file or directory, never a symlink) another user could write: code loaded from it would run
    in this process."""
    st = st or os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise BuildError(f"torch_foo: refusing to use {path}: it is a symbolic link; {_REFUSAL_ADVICE} "
                         "Set TORCH_FOO_BUILD_DIR to a real directory of your own.")
    if st.st_uid != os.geteuid():
        raise BuildError(
            f"torch_foo: refusing to use {path}: it is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
            f"{_REFUSAL_ADVICE} Set TORCH_FOO_BUILD_DIR to a directory of your own."
        )
    if st.st_mode & 0o022:
        raise BuildError(
            f"torch_foo: refusing to use {path}: it is writable by group or others (mode {st.st_mode & 0o7777:o}); "
            f"{_REFUSAL_ADVICE} Fix it with `chmod go-w {shlex.quote(str(path))}` or set TORCH_FOO_BUILD_DIR elsewhere."
        )


def _check_root_secure(root: Path) -> None:
    """The root as _check_secure, and every directory above it as ssh and pip check: owned by you or root and not
    writable by others, unless sticky (/tmp); otherwise another user could swap the root for a link."""
    _check_secure(root)
    for parent in Path(os.path.realpath(root)).parents:
        st = os.stat(parent)
        if st.st_uid not in (0, os.geteuid()) or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
            raise BuildError(
                f"torch_foo: refusing to use the build root {root}: its parent directory {parent} is "
                + (f"owned by uid {st.st_uid}" if st.st_uid not in (0, os.geteuid()) else
                   f"writable by group or others and not sticky (mode {st.st_mode & 0o7777:o})")
                + f", so another user could replace the root; {_REFUSAL_ADVICE} Set TORCH_FOO_BUILD_DIR elsewhere."
            )


def _check_tree_trusted(top: Path) -> None:
    """Every directory and file under top (objects, ninja files, libraries, manifests): each is linked or loaded."""
    _check_secure(top)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            _check_secure(Path(dirpath, name))


def _make_private_dirs(root: Path, path: Path) -> None:
    """Create path (under root) and missing parents as 0700, marked as torch_foo's, then check every directory from
    root down to path."""
    for directory in reversed([path, *path.parents]):
        inside = directory == root or root in directory.parents
        if not os.path.lexists(directory):
            try:
                directory.mkdir(mode=0o700)  # os.makedirs would give the parents the umask's mode
                if inside:
                    (directory / MARKER).touch(mode=0o600)
            except FileExistsError:
                pass
            except OSError as error:
                raise BuildError(f"torch_foo: cannot create the build directory {directory}: {error.strerror}; "
                                 "set TORCH_FOO_BUILD_DIR to a writable directory of your own") from error
        if directory == root:
            _check_root_secure(root)
        elif inside:
            _check_secure(directory)
    if not path.is_dir():
        raise BuildError(f"torch_foo: the build directory {path} is not a directory; set TORCH_FOO_BUILD_DIR elsewhere")


def _is_intact(plan: _Plan) -> bool:
    """Whether the manifest exists and the library matches its size and sha256 (about 1 ms per MB)."""
    try:
        manifest_text = plan.manifest.read_text()
        library_size = os.stat(plan.artifact).st_size
    except (FileNotFoundError, NotADirectoryError):
        return False
    _check_root_secure(plan.root)
    for path in (plan.workdir, plan.lib_dir, plan.manifest, plan.artifact):
        _check_secure(path)
    try:
        manifest = json.loads(manifest_text)
    except ValueError:
        return False
    return manifest.get("size") == library_size and manifest.get("sha256") == _file_sha256(plan.artifact)


@contextlib.contextmanager
def _open_trusted_root(root: Path):
    """The root opened once, not through a symlink, checked through the descriptor: what `clean` deletes afterwards
    is relative to it, so a rename of the root meanwhile cannot redirect the deletion."""
    _check_root_secure(root)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        raise BuildError(f"torch_foo: cannot open the build root {root}: {error.strerror}") from error
    try:
        _check_secure(root, os.fstat(fd))
        yield fd
    finally:
        os.close(fd)


def _lexists_at(dir_fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False


def _is_real_dir_at(dir_fd: int, name: str) -> bool:
    """A directory, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _made_by_torch_foo(root_fd: int, name: str) -> bool:
    """A real directory (not a link) holding torch_foo's marker file."""
    return _is_real_dir_at(root_fd, name) and _lexists_at(root_fd, f"{name}/{MARKER}")


def _is_lock_of(name: str, targets: list[str]) -> bool:
    return name.endswith(".lock") and name.removesuffix(".lock") in targets


# ------------------------------------------------------------------------------------------------------- cold path


def _find_ninja() -> str:
    import sysconfig

    # Also look beside this interpreter, where `pip install ninja` puts it (not on PATH in an unactivated venv), and in
    # the ninja package itself (a venv that reaches another environment's site-packages has no script of its own).
    ninja = shutil.which("ninja") or shutil.which("ninja", path=sysconfig.get_path("scripts"))
    if ninja is None:
        try:
            from ninja import BIN_DIR
        except ImportError:
            pass
        else:
            ninja = shutil.which("ninja", path=BIN_DIR)
    if ninja is None:
        raise BuildError("torch_foo: ninja is needed to build the backend and was not found; `pip install ninja`")
    return ninja


def _say(message: str) -> None:
    if not _env_flag("TORCH_FOO_QUIET"):
        print(message, file=sys.stderr, flush=True)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


class _build_lock:
    """An OS file lock on the toolchain: the kernel drops it when the holder dies, so a killed build blocks nobody."""

    def __init__(self, plan: _Plan):
        from filelock import FileLock

        self._lock = FileLock(str(plan.lock_path))
        self._workdir = plan.workdir

    def __enter__(self):
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            _say(f"torch_foo: waiting for another process that is building in {self._workdir} ...")
            self._lock.acquire()

    def __exit__(self, *exc_info):
        self._lock.release()


def _snapshot_sources(plan: _Plan) -> _Plan:
    """Copy the sources into the snapshot directory, rewriting only files whose content changed (so ninja's mtimes
    see exactly the edits, also those behind an old mtime), and return the plan hashed from the copied bytes: the
    library is published under the hash of what it was compiled from, whatever is edited during the build."""
    snapshot = plan.snapshot_dir
    _make_private_dirs(plan.root, snapshot)
    digests = {}
    for name in _hashed_files(plan.source_dir, plan.spec.excluded_dirs):
        content = (plan.source_dir / name).read_bytes()
        digests[name] = hashlib.sha256(content).hexdigest()
        copy = snapshot / name
        if not copy.is_file() or _file_sha256(copy) != digests[name]:
            _make_private_dirs(plan.root, copy.parent)
            _write_atomically(copy, content)
    for copy in [path for path in snapshot.rglob("*") if path.is_file()]:
        if copy.relative_to(snapshot).as_posix() not in digests and copy.name != MARKER:
            copy.unlink()  # a header deleted from the sources must not stay includable
    compiled = tuple(name for name in plan.compiled if name in digests)
    link_hash = _plan(plan.spec.links, probe_compiler=True).source_hash if plan.spec.links else ""
    return dataclasses.replace(plan, compiled=compiled, digests=digests, source_hash=_source_hash(digests, link_hash))


def _translation_units(plan: _Plan) -> list[Path]:
    """The files to hand to cpp_extension, which names each object after its source's base name alone: a source whose
    name another one shares (foo/stream.cpp, runtime/stream.cpp) is compiled through a one-line unit named after its
    whole path (units/foo.stream.cpp: #include "foo/stream.cpp"), so that the two objects do not overwrite each other."""
    stems = [Path(name).stem for name in plan.compiled]
    units_dir = plan.workdir / "units"
    units = []
    for name, stem in zip(plan.compiled, stems):
        if stems.count(stem) == 1:
            units.append(plan.snapshot_dir / name)
            continue
        _make_private_dirs(plan.root, units_dir)
        unit = units_dir / name.replace("/", ".")
        content = f'#include "{name}"  // generated by torch_foo: see _translation_units\n'.encode()
        if not unit.is_file() or unit.read_bytes() != content:
            _write_atomically(unit, content)
        units.append(unit)
    return units


def _check_no_static_registrations(plan: _Plan) -> None:
    for name in plan.compiled:
        text = (plan.snapshot_dir / name).read_text(errors="replace")
        if match := _STATIC_REGISTRATION.search(text):
            line = text.count("\n", 0, match.start()) + 1
            raise BuildError(
                f"torch_foo: {plan.source_dir / name}:{line}: {match.group(1)} in the reloadable kernels "
                "library: static registrations cannot be withdrawn on reload; use FOO_KERNELS, FOO_OPERATORS or "
                "FOO_OPERATOR_KERNELS (csrc/foo/registration.h)"
            )


def _compile(ninja: str, plan: _Plan, linked: Path | None) -> Path:
    """Compile and link the snapshot with torch.utils.cpp_extension.load, which owns the compiler and linker flags
    for the installed torch (and nvcc for .cu sources). is_standalone with -shared: it links a library and returns its
    path without loading it, as this process loads the published copy (under its hash) instead."""
    from torch.utils import cpp_extension  # cold path only: importing it costs about half a second

    if plan.spec.reloadable:
        _check_no_static_registrations(plan)
    snapshot = plan.snapshot_dir
    # cpp_extension's own lock is a file a killed build leaves behind (a silent endless wait); ours, held now, is
    # an OS lock, so a leftover one is stale.
    (plan.workdir / "lock").unlink(missing_ok=True)
    # The soname carries the source hash: a library linked against this one finds it loaded under that name. As it
    # changes with every edit, also of a header, it makes cpp_extension's in-process versioner rebuild.
    ldflags = [*plan.ldflags, f"-Wl,-soname,{plan.artifact.name}", *([str(linked)] if linked else [])]
    units = _translation_units(plan)
    with _ninja_runner(cpp_extension, ninja, plan, units):
        built = cpp_extension.load(
            name=plan.spec.name,
            sources=[str(unit) for unit in units],
            extra_cflags=list(plan.cflags),
            extra_ldflags=ldflags,
            # torch's profiler headers (csrc/foo/profiler.cpp) include Kineto's, which the wheel ships apart.
            extra_include_paths=[str(snapshot), os.path.join(cpp_extension.include_paths()[0], "kineto")],
            build_directory=str(plan.workdir),
            verbose=_env_flag("TORCH_FOO_VERBOSE"),
            is_python_module=False,
            is_standalone=True,
        )
    return Path(built)


@contextlib.contextmanager
def _ninja_runner(cpp_extension, ninja: str, plan: _Plan, units: list[Path]):
    """Has cpp_extension.load run ninja through _run_ninja, after adding the precompiled header to the build file it
    wrote: progress as `[n/N] CXX file`, the output kept in build.log, a BuildError with the first failure, ninja
    stopped if this process dies, nothing group-writable."""

    def run_ninja_build(build_directory, verbose, error_prefix):
        _add_precompiled_header(plan, units)
        _run_ninja(ninja, plan)

    def ninja_found():  # cpp_extension looks for `ninja` on PATH only; ours was found above, maybe elsewhere
        pass

    originals = cpp_extension._run_ninja_build, cpp_extension.verify_ninja_availability
    cpp_extension._run_ninja_build, cpp_extension.verify_ninja_availability = run_ninja_build, ninja_found
    try:
        yield
    finally:
        cpp_extension._run_ninja_build, cpp_extension.verify_ninja_availability = originals


_COMPILE_EDGE = re.compile(r"^build (\S+): compile (.+)$")


def _add_precompiled_header(plan: _Plan, units: list[Path]) -> None:
    """Adds to cpp_extension's build.ninja an edge that precompiles spec.precompiled_header with the same compiler and
    flags as the units (GCC uses a .gch only if they match; with -Winvalid-pch it says why not), and has each unit that
    includes any header it lists include it first. A library linked against one built with the same header and flags
    uses that one's. GCC only: clang has its own PCH format and flags."""
    header = plan.spec.precompiled_header
    if header is None or "clang" in plan.compiler_version.lower():
        return
    wrapper = _precompiled_wrapper(plan)
    linked = _plan(plan.spec.links, probe_compiler=False) if plan.spec.links is not None else None
    shared = (
        linked is not None
        and (linked.spec.precompiled_header, linked.cflags, linked.compiler) == (header, plan.cflags, plan.compiler)
        and Path(f"{_precompiled_wrapper(linked)}.gch").is_file()
    )
    if shared:
        wrapper = _precompiled_wrapper(linked)
    else:
        _make_private_dirs(plan.root, wrapper.parent)
        # The .gch must lie beside the header that is force-included: a one-line wrapper, not in the snapshot.
        content = f'#include "{plan.snapshot_dir / header}"  // generated by torch_foo: _add_precompiled_header\n'.encode()
        if not wrapper.is_file() or wrapper.read_bytes() != content:
            _write_atomically(wrapper, content)
    precompiled = _system_includes(plan, [header])
    users = {str(unit) for name, unit in zip(plan.compiled, units) if precompiled & _system_includes(plan, [name])}
    gch = _ninja_path(f"{wrapper}.gch")
    ninja_file = plan.workdir / "build.ninja"
    lines = []
    for line in ninja_file.read_text().splitlines():
        match = _COMPILE_EDGE.match(line)
        if match and match.group(2).replace("$ ", " ").replace("$:", ":") in users:
            line += f" | {gch}\n  cflags = $cflags -Winvalid-pch -include {shlex.quote(str(wrapper))}"
        lines.append(line)
    if not shared:
        lines += [
            "",
            "rule precompile_header",
            "  command = $cxx -x c++-header -MMD -MF $out.d $cflags -c $in -o $out $post_cflags",
            "  depfile = $out.d",
            "  deps = gcc",
            f"build {gch}: precompile_header {_ninja_path(str(wrapper))}",
        ]
    _write_atomically(ninja_file, "\n".join([*lines, ""]).encode())


def _precompiled_wrapper(plan: _Plan) -> Path:
    return plan.workdir / "pch" / Path(plan.spec.precompiled_header).name


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]', re.MULTILINE)


def _system_includes(plan: _Plan, names: list[str]) -> set[str]:
    """The <...> headers the given files of the snapshot include, directly or through its own "..." headers."""
    found, seen, pending = set(), set(), list(names)
    while pending:
        name = pending.pop()
        if name in seen or not (plan.snapshot_dir / name).is_file():
            continue
        seen.add(name)
        for bracket, included in _INCLUDE.findall((plan.snapshot_dir / name).read_text(errors="replace")):
            if bracket == "<":
                found.add(included)
            else:  # relative to the including file, else to the source root (-I)
                beside = (Path(name).parent / included).as_posix()
                pending.append(beside if (plan.snapshot_dir / beside).is_file() else included)
    return found


def _ninja_path(path: str) -> str:
    return path.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


_PROGRESS = re.compile(r"^(\[\d+/\d+\]) (.*)$")


def _progress_line(line: str, plan: _Plan) -> str:
    """ninja prints each command of cpp_extension's rules (they have no description); say what it does instead."""
    match = _PROGRESS.match(line.rstrip("\n"))
    if not match:
        return line
    status, command = match.groups()
    if " -x c++-header " in command:
        return f"{status} PCH {plan.spec.precompiled_header}\n"
    if compiled := re.search(r" -c (\S+)", command):
        source = Path(compiled.group(1).strip("'"))
        shown = source.relative_to(plan.snapshot_dir) if source.is_relative_to(plan.snapshot_dir) else source.name
        return f"{status} CXX {shown}\n"
    if linked := re.search(r" -o (\S+)$", command):
        return f"{status} LINK {linked.group(1)}\n"
    return line


def _run_ninja(ninja: str, plan: _Plan) -> None:
    command = [ninja]
    verbose = _env_flag("TORCH_FOO_VERBOSE")
    if verbose:
        command.append("-v")
    if os.environ.get("MAX_JOBS", "").isdigit():
        command += ["-j", os.environ["MAX_JOBS"]]
    quiet = _env_flag("TORCH_FOO_QUIET")
    snapshot_prefix, source_prefix = f"{plan.snapshot_dir}/", f"{plan.source_dir}/"
    output = []
    with subprocess.Popen(
        command,
        cwd=plan.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        umask=0o022,  # nothing in the cache may be group- or world-writable
        preexec_fn=_die_with_parent(),
    ) as ninja_process:
        for line in ninja_process.stdout:
            output.append(line)
            if not quiet:
                # Diagnostics name the file the user edits; full commands (verbose) what really ran.
                shown = line if verbose else _progress_line(line, plan).replace(snapshot_prefix, source_prefix)
                sys.stderr.write(shown)
                sys.stderr.flush()
    log = "".join(output)
    _write_atomically(plan.workdir / "build.log", log.encode())
    if ninja_process.returncode != 0:
        raise BuildError(_failure_message(plan, log, ninja_process.returncode))


def _die_with_parent():
    """A preexec_fn that has the kernel SIGTERM ninja (which then stops its compilers) if this process dies, so that
    a SIGKILLed import leaves nothing running that writes into the cache."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def set_parent_death_signal():
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_parent_death_signal


def _failure_message(plan: _Plan, log: str, returncode: int) -> str:
    lines = log.replace(f"{plan.snapshot_dir}/", f"{plan.source_dir}/").splitlines()
    first_failure = next((i for i, line in enumerate(lines) if line.startswith("FAILED:")), 0)
    excerpt = lines[first_failure:][:200]
    return "\n".join(
        [
            f"torch_foo: building {plan.spec.name} failed (ninja exit status {returncode}) in {plan.workdir}:",
            *excerpt,
            f"Full log: {plan.workdir / 'build.log'}. Previously built libraries in {plan.lib_dir} are untouched.",
        ]
    )


def _check_exceptions_reach_python(plan: _Plan, library: Path, linked: Path | None) -> None:
    """A toolchain can build libraries whose C++ exceptions crash instead of unwinding (a CXX wrapper script around
    another g++ did: every TORCH_CHECK with a formatted message segfaulted). Check once per build, in a child process,
    that a formatted error raised in the new library reaches Python as a RuntimeError."""
    namespace, op = plan.spec.exception_probe.split("::")
    probe = (
        "import sys, torch\n"
        + "".join(f"torch.ops.load_library({str(path)!r})\n" for path in (linked, library) if path)
        + "try:\n"
        f"    torch.ops.{namespace}.{op}([2, 3])\n"
        "except RuntimeError as error:\n"
        "    sys.exit(0 if '[2, 3]' in str(error) else 3)\n"
        "sys.exit(4)\n"
    )
    env = {**os.environ, "TORCH_DEVICE_BACKEND_AUTOLOAD": "0"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        what = (f"was killed by signal {-result.returncode}" if result.returncode < 0
                else f"exited with status {result.returncode}")
        raise BuildError(
            f"torch_foo: the library built with {shlex.join(plan.compiler)} ({plan.compiler_version.splitlines()[0]}) "
            f"cannot carry C++ exceptions: a check that raises a formatted error {what} instead of raising a Python "
            "RuntimeError. This compiler (or the wrapper script CXX names) produces broken extensions; point CXX at "
            "the system g++ (e.g. CXX=/usr/bin/g++) and import again.\n" + result.stderr[-2000:]
        )


def _remove_build_outputs(workdir: Path) -> None:
    for path in workdir.iterdir():
        if path.suffix == ".o" or path.name in (".ninja_log", ".ninja_deps"):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _atomic_writer(path: Path):
    """A file that appears under path, complete and 0644, only once the block finishes without error."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644), "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # the umask can only have cleared bits; be exact
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_atomically(path: Path, content: bytes) -> None:
    with _atomic_writer(path) as file:
        file.write(content)


def _publish(plan: _Plan, library: Path) -> None:
    """Copy the linked library under its content name, then write the manifest that marks it complete."""
    digest = hashlib.sha256()
    with open(library, "rb") as source, _atomic_writer(plan.artifact) as target:
        while chunk := source.read(_DIGEST_CHUNK):
            digest.update(chunk)
            target.write(chunk)
        size = target.tell()
    manifest = {
        "size": size,
        "sha256": digest.hexdigest(),
        "name": plan.spec.name,
        "source_dir": str(plan.source_dir),
        "source_hash": plan.source_hash,
        "toolchain_key": plan.toolchain_key,
        "torch": torch.__version__,
        "compiler": plan.compiler_version.splitlines()[0] if plan.compiler_version else "",
    }
    _write_atomically(plan.manifest, json.dumps(manifest, indent=1).encode())


def _prune(lib_dir: Path) -> None:
    """Keep the newest ARTIFACTS_KEPT libraries; drop older ones and leftovers of killed builds. Runs under the lock."""
    manifests = sorted(lib_dir.glob("*.json"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    kept = {path.stem for path in manifests[:ARTIFACTS_KEPT]} | {Path(MARKER).stem}
    for path in lib_dir.iterdir():
        if path.stem not in kept:
            path.unlink(missing_ok=True)
