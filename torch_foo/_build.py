"""Just-in-time build of the C++ backend into a per-user cache keyed by what went into it.

The first import compiles the sources with ninja; every later import finds the finished library by its key and loads it
without importing torch.utils.cpp_extension or spawning any process.

Cache layout under the build root ($TORCH_FOO_BUILD_DIR, else $TORCH_EXTENSIONS_DIR/torch_foo, else
~/.cache/torch_foo):

    compilers/<fingerprint>.txt            `$CXX --version`, keyed by the compiler binaries' path, size and mtime
    <toolchain_key>.lock                   build lock (an OS lock: released by the kernel if the holder dies)
    <toolchain_key>/build.ninja, obj/      ninja working directory; objects survive source edits
    <toolchain_key>/build.log              output of the last ninja run
    <toolchain_key>/lib/<name>-<source_hash>.so     finished libraries, the newest ARTIFACTS_KEPT of them
    <toolchain_key>/lib/<name>-<source_hash>.json   manifest (size, sha256), written last: marks the .so complete

The toolchain key hashes the flags, torch's version and git revision, the Python ABI and the compiler's identity; the
source hash covers every source and header under the source directory.

Environment: TORCH_FOO_BUILD_DIR / TORCH_EXTENSIONS_DIR (build root, above); TORCH_FOO_SOURCE_DIR (the backend's C++
sources instead of the package's or the repository's csrc/); TORCH_FOO_SANITIZE=address,undefined (any of address,
undefined, thread: a separate, instrumented build); CXX (compiler, default c++); MAX_JOBS (ninja -j);
TORCH_FOO_QUIET=1 (no progress output); TORCH_FOO_VERBOSE=1 (ninja -v: full command lines).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# Bump when the build recipe below changes, so caches made by an older recipe are not reused.
_RECIPE_VERSION = 1
ARTIFACTS_KEPT = 3
COMPILED_SUFFIXES = (".cpp",)
HASHED_SUFFIXES = (".cpp", ".h", ".hpp")
SANITIZERS = ("address", "undefined", "thread")
BACKEND_NAME = "torch_foo_C"
_DIGEST_CHUNK = 1 << 20


class BuildError(ImportError):
    """The backend could not be built, or its cache cannot be trusted."""


@dataclass(frozen=True)
class BuildSpec:
    name: str  # library name, also -DTORCH_EXTENSION_NAME
    source_dir: Path  # *.cpp under it are compiled; excluded: tests/, build*/, hidden and CMake build directories
    extra_cflags: tuple[str, ...] = ()
    extra_ldflags: tuple[str, ...] = ()
    build_root: Path | None = None  # None: $TORCH_FOO_BUILD_DIR, $TORCH_EXTENSIONS_DIR/torch_foo, ~/.cache/torch_foo


@dataclass(frozen=True)
class _Plan:
    """A spec resolved against the current sources and toolchain."""

    spec: BuildSpec
    root: Path
    source_dir: Path
    sources: tuple[Path, ...]  # the translation units
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

    @property
    def linked(self) -> Path:
        return self.workdir / f"{self.spec.name}.so"


# ----------------------------------------------------------------------------------------------------------- public API


def backend_spec() -> BuildSpec:
    """The real backend: csrc/ from $TORCH_FOO_SOURCE_DIR, the installed package or the repository; -O2 and sanitizers
    from $TORCH_FOO_SANITIZE (e.g. "address,undefined")."""
    sanitize = _sanitizer_flags(os.environ.get("TORCH_FOO_SANITIZE", ""))
    return BuildSpec(
        name=BACKEND_NAME,
        source_dir=_backend_source_dir(),
        extra_cflags=("-O2", *sanitize),
        extra_ldflags=sanitize,
    )


def library_path(spec: BuildSpec) -> Path:
    """The library for the current key; it may not exist yet."""
    return _plan(spec, probe_compiler=True).artifact


def find_built(spec: BuildSpec) -> Path | None:
    """The finished, intact library for the current key, or None. Spawns no process."""
    plan = _plan(spec, probe_compiler=False)
    if plan is None or not _is_intact(plan):
        return None
    return plan.artifact


def ensure_built(spec: BuildSpec) -> Path:
    return find_built(spec) or build(spec)


def build(spec: BuildSpec, force: bool = False) -> Path:
    """Build the library unless another process already has; force=True recompiles every translation unit."""
    ninja = _find_ninja()
    plan = _plan(spec, probe_compiler=True)
    _make_private_dirs(plan.root, plan.workdir)
    with _build_lock(plan):
        if not force and _is_intact(plan):
            return plan.artifact
        _make_private_dirs(plan.root, plan.lib_dir)
        _check_tree_secure(plan.workdir)
        if force:
            _remove_ninja_outputs(plan.workdir)
        _say(f"torch_foo: compiling the foo backend (first import only, about a minute) in {plan.workdir} ...")
        # Sources edited while ninja ran would give a library that matches neither version: build again until the
        # sources hash the same before and after.
        for _ in range(3):
            _write_ninja_file(plan)
            _forget_stale_objects(plan)
            _run_ninja(ninja, plan)
            settled = _plan(spec, probe_compiler=True)
            if settled.source_hash == plan.source_hash:
                _publish(plan)
                _prune(plan.lib_dir)
                return plan.artifact
            plan = settled
        raise BuildError(f"torch_foo: the sources under {plan.source_dir} kept changing during the build")


def clean(spec: BuildSpec, everything: bool = False) -> list[Path]:
    """Delete the build directory of spec's toolchain, or with everything=True every cached build; returns them."""
    root = _build_root(spec)
    if not root.is_dir():
        return []
    _check_secure(root)
    if everything:
        targets = sorted(path for path in root.iterdir() if path.is_dir())
    else:
        targets = [_plan(spec, probe_compiler=True).workdir]
    from filelock import FileLock

    removed = []
    for target in targets:
        lock_path = root / f"{target.name}.lock"  # toolchain directories have one; compilers/ does not
        with FileLock(str(lock_path)) if lock_path.exists() else contextlib.nullcontext():
            if target.exists():
                shutil.rmtree(target)
                removed.append(target)
    return removed


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
    sources, source_hash = _scan_sources(source_dir)
    compiler = tuple(shlex.split(os.environ.get("CXX", "c++")))  # what cpp_extension uses
    compiler_version = _compiler_version(root, compiler, probe_compiler)
    if compiler_version is None:
        return None
    cflags = (
        "-std=c++17",
        "-fPIC",
        # Match torch's libstdc++ ABI; cpp_extension stopped passing it once torch became cxx11-ABI only.
        f"-D_GLIBCXX_USE_CXX11_ABI={int(getattr(torch._C, '_GLIBCXX_USE_CXX11_ABI', True))}",
        f"-DTORCH_EXTENSION_NAME={spec.name}",
        f"-I{source_dir}",
        *spec.extra_cflags,
    )
    # --no-undefined: a symbol nothing defines fails the link, with its name, instead of the later import.
    ldflags = ("-shared", "-Wl,--no-undefined", *spec.extra_ldflags, "-lc10", "-ltorch_cpu", "-ltorch")
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
        sources=sources,
        cflags=cflags,
        ldflags=ldflags,
        compiler=compiler,
        compiler_version=compiler_version,
        toolchain_key=_short_hash(json.dumps(toolchain, sort_keys=True).encode()),
        source_hash=source_hash,
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
        raise ValueError(f"TORCH_FOO_SANITIZE: unknown sanitizer(s) {sorted(unknown)}; choose from {list(SANITIZERS)}")
    if not names:
        return ()
    ordered = ",".join(name for name in SANITIZERS if name in names)
    return (f"-fsanitize={ordered}", "-fno-omit-frame-pointer", "-g")


def _python_abi() -> str:
    return importlib.machinery.EXTENSION_SUFFIXES[0].strip(".").removesuffix(".so")  # e.g. cpython-311-x86_64-linux-gnu


def _is_excluded_dir(path: Path) -> bool:
    name = path.name
    return (
        name == "tests"
        or name.startswith(("build", "cmake-build", "."))
        or (path / "CMakeCache.txt").exists()
    )


def _hashed_files(source_dir: Path) -> list[Path]:
    """Every source and header under source_dir that the build depends on, in a stable order."""
    hashed = []
    for dirpath, dirnames, filenames in os.walk(source_dir):
        dirnames[:] = sorted(d for d in dirnames if not _is_excluded_dir(Path(dirpath, d)))
        hashed += [Path(dirpath, f) for f in sorted(filenames) if f.endswith(HASHED_SUFFIXES)]
    return hashed


def _scan_sources(source_dir: Path) -> tuple[tuple[Path, ...], str]:
    """The translation units under source_dir and a hash of every source and header there."""
    if not source_dir.is_dir():
        raise BuildError(f"torch_foo: the C++ source directory {source_dir} does not exist")
    hashed = _hashed_files(source_dir)
    digest = hashlib.sha256()
    for path in hashed:
        content = path.read_bytes()
        digest.update(f"{path.relative_to(source_dir).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    sources = tuple(path for path in hashed if path.suffix in COMPILED_SUFFIXES)
    if not sources:
        raise BuildError(f"torch_foo: no C++ sources ({', '.join(COMPILED_SUFFIXES)}) under {source_dir}")
    return sources, digest.hexdigest()[:16]


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
        _check_secure(root)
        _check_secure(cache_dir)
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


def _check_secure(path: Path) -> None:
    """Refuse a path another user could write: code loaded from it would run in this process."""
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise BuildError(
            f"torch_foo: refusing to use {path}: it is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
            "a library built or loaded there could run another user's code in this process. "
            "Set TORCH_FOO_BUILD_DIR to a directory of your own."
        )
    if st.st_mode & 0o022:
        raise BuildError(
            f"torch_foo: refusing to use {path}: it is writable by group or others (mode {st.st_mode & 0o7777:o}); "
            "a library built or loaded there could run another user's code in this process. "
            f"Fix it with `chmod go-w {shlex.quote(str(path))}` or set TORCH_FOO_BUILD_DIR elsewhere."
        )


def _check_tree_secure(top: Path) -> None:
    _check_secure(top)
    for dirpath, dirnames, _ in os.walk(top):
        for name in dirnames:
            _check_secure(Path(dirpath, name))


def _make_private_dirs(root: Path, path: Path) -> None:
    """Create path (under root) and missing parents as 0700, then check every directory from root down to path."""
    for directory in reversed([path, *path.parents]):
        if not directory.exists():
            try:
                directory.mkdir(mode=0o700)  # os.makedirs would give the parents the umask's mode
            except FileExistsError:
                pass
        if directory == root or root in directory.parents:
            _check_secure(directory)


def _is_intact(plan: _Plan) -> bool:
    """Whether the manifest exists and the library matches its size and sha256 (about 1 ms per MB)."""
    try:
        manifest_text = plan.manifest.read_text()
        library_size = os.stat(plan.artifact).st_size
    except FileNotFoundError:
        return False
    for path in (plan.root, plan.workdir, plan.lib_dir, plan.manifest, plan.artifact):
        _check_secure(path)
    try:
        manifest = json.loads(manifest_text)
    except ValueError:
        return False
    return manifest.get("size") == library_size and manifest.get("sha256") == _file_sha256(plan.artifact)


# ------------------------------------------------------------------------------------------------------- cold path


def _find_ninja() -> str:
    import sysconfig

    # Also look beside this interpreter: `pip install ninja` puts it there, which is not on PATH in an unactivated venv.
    ninja = shutil.which("ninja") or shutil.which("ninja", path=sysconfig.get_path("scripts"))
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


def _ninja_path(path: Path | str) -> str:
    return str(path).replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def _ninja_value(words) -> str:
    return " ".join(shlex.quote(str(word)) for word in words).replace("$", "$$")


def _write_ninja_file(plan: _Plan) -> None:
    from torch.utils import cpp_extension  # cold path only: importing it costs about half a second

    cflags = [*plan.cflags]
    kineto = os.path.join(cpp_extension.include_paths()[0], "kineto")  # torch's profiler headers include Kineto's
    for include in [*cpp_extension.include_paths(), kineto, _python_include_dir()]:
        cflags += ["-isystem", include]  # -isystem: no warnings from torch's headers
    ldflags = [*plan.ldflags[:1], *(f"-L{path}" for path in cpp_extension.library_paths()), *plan.ldflags[1:]]
    lines = [
        "ninja_required_version = 1.3",
        f"cxx = {_ninja_value(plan.compiler)}",
        f"cflags = {_ninja_value(cflags)}",
        f"ldflags = {_ninja_value(ldflags)}",
        "",
        "rule compile",
        "  command = $cxx -MMD -MF $out.d $cflags -c $in -o $out",
        "  depfile = $out.d",
        "  deps = gcc",
        "  description = CXX $source",
        "",
        "rule link",
        "  command = $cxx $in $ldflags -o $out",
        "  description = LINK $out",
        "",
    ]
    objects = []
    for source in plan.sources:
        relative = source.relative_to(plan.source_dir).as_posix()
        objects.append(_ninja_path(f"obj/{relative}.o"))
        lines += [f"build {objects[-1]}: compile {_ninja_path(source)}", f"  source = {relative.replace('$', '$$')}"]
    lines += [f"build {_ninja_path(plan.linked.name)}: link {' '.join(objects)}", ""]
    content = "\n".join(lines)
    build_file = plan.workdir / "build.ninja"
    if not build_file.exists() or build_file.read_text() != content:
        _write_atomically(build_file, content.encode())


def _python_include_dir() -> str:
    import sysconfig

    return sysconfig.get_path("include", scheme="posix_prefix")  # Python.h, for sources that use torch/python.h


def _run_ninja(ninja: str, plan: _Plan) -> None:
    command = [ninja]
    if _env_flag("TORCH_FOO_VERBOSE"):
        command.append("-v")
    if os.environ.get("MAX_JOBS", "").isdigit():
        command += ["-j", os.environ["MAX_JOBS"]]
    quiet = _env_flag("TORCH_FOO_QUIET")
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
                sys.stderr.write(line)
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
    lines = log.splitlines()
    first_failure = next((i for i, line in enumerate(lines) if line.startswith("FAILED:")), 0)
    excerpt = lines[first_failure:][:200]
    return "\n".join(
        [
            f"torch_foo: building {plan.spec.name} failed (ninja exit status {returncode}) in {plan.workdir}:",
            *excerpt,
            f"Full log: {plan.workdir / 'build.log'}. Previously built libraries in {plan.lib_dir} are untouched.",
        ]
    )


def _forget_stale_objects(plan: _Plan) -> None:
    """Ninja recompiles a file only if it is newer than its object. A file whose content changed but whose mtime did
    not move past the last build (restored with `cp -p`, `tar`, `rsync -t`, ...) would be linked from a stale object:
    remove the objects it feeds (all of them for a header). Then record the content this build compiles, before ninja
    runs, so that a build that fails halfway still leaves a true record of the objects it rewrote."""
    record_path = plan.workdir / "inputs.json"
    started_ns = time.time_ns()
    paths = {path.relative_to(plan.source_dir).as_posix(): path for path in _hashed_files(plan.source_dir)}
    current = {name: _file_sha256(path) for name, path in paths.items()}
    try:
        record = json.loads(record_path.read_text())
        since_ns, recorded = int(record["started_ns"]), dict(record["files"])
    except (OSError, ValueError, KeyError, TypeError):
        since_ns, recorded = 0, {}  # nothing built here yet, or an unreadable record: ninja's view is all there is
    stale = [name for name, digest in current.items()
             if paths[name].stat().st_mtime_ns <= since_ns and recorded.get(name) != digest]
    if any(paths[name].suffix not in COMPILED_SUFFIXES for name in stale):
        shutil.rmtree(plan.workdir / "obj", ignore_errors=True)
    for name in stale:
        (plan.workdir / "obj" / f"{name}.o").unlink(missing_ok=True)
    _write_atomically(record_path, json.dumps({"started_ns": started_ns, "files": current}).encode())


def _remove_ninja_outputs(workdir: Path) -> None:
    shutil.rmtree(workdir / "obj", ignore_errors=True)
    for name in (".ninja_log", ".ninja_deps"):
        (workdir / name).unlink(missing_ok=True)


@contextlib.contextmanager
def _atomic_writer(path: Path):
    """A file that appears under path, complete and 0644, only once the block finishes without error."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "wb") as file:
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


def _publish(plan: _Plan) -> None:
    """Copy the linked library under its content name, then write the manifest that marks it complete."""
    digest = hashlib.sha256()
    with open(plan.linked, "rb") as source, _atomic_writer(plan.artifact) as target:
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
    kept = {path.stem for path in manifests[:ARTIFACTS_KEPT]}
    for path in lib_dir.iterdir():
        if path.stem not in kept:
            path.unlink(missing_ok=True)
