"""Tests of the build-and-load machinery (torch_foo/_build.py), driven by a two-file C++ library in
build_fixtures/two_units rather than the real backend: ops.cpp defines the op build_fixture::answer(), which returns
fixture_value() from value.cpp. The tests rewrite value.cpp, which includes no torch header and so recompiles in a
fraction of a second. The fixture's tests/ and build-release/ (a CMake build tree) directories hold files that do not
compile: they must be skipped. kernels/ and distributed/ stand in for the backend's kernels and c10d libraries where a
test needs them.

Libraries are loaded only in fresh subprocesses: a TORCH_LIBRARY namespace can be defined once per process. Building
without loading is fine in this process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "torch_foo"
FIXTURE = Path(__file__).resolve().parent / "build_fixtures" / "two_units"
BUILD_TIMEOUT = 600  # seconds; generous, as other builds may share the machine
COMPILING = "torch_foo: compiling"


def _load_build_module():
    # By path: importing the torch_foo package would build and load the real backend.
    spec = importlib.util.spec_from_file_location("torch_foo_build_under_test", PACKAGE_DIR / "_build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_build = _load_build_module()

# Subprocesses get torch_foo._build without running torch_foo/__init__.py, which builds and loads the real backend.
PRELUDE = f"""
import os, subprocess, sys, types
from pathlib import Path
import torch
package = types.ModuleType("torch_foo")
package.__path__ = [{str(PACKAGE_DIR)!r}]
sys.modules["torch_foo"] = package
from torch_foo import _build
spec = _build.BuildSpec(name="build_fixture", source_dir=Path(sys.argv[1]))
"""
LOAD_AND_ANSWER = PRELUDE + """
torch.ops.load_library(str(_build.ensure_built(spec)))
print(torch.ops.build_fixture.answer())
"""


def clean_env(build_root: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH_FOO_") and k != "TORCH_EXTENSIONS_DIR"}
    env["TORCH_FOO_BUILD_DIR"] = str(build_root)
    env["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"  # an installed torch_foo would otherwise load the real backend
    env.update(overrides)
    return env


def run_python(code: str, sources: Path, build_root: Path, timeout: float = BUILD_TIMEOUT, **env: str):
    return subprocess.run(
        [sys.executable, "-c", code, str(sources)],
        env=clean_env(build_root, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_answer(sources: Path, build_root: Path, **env: str) -> subprocess.CompletedProcess:
    """Import in a fresh process the way torch_foo does and call the op; asserts success."""
    result = run_python(LOAD_AND_ANSWER, sources, build_root, **env)
    assert result.returncode == 0, result.stderr
    return result


def set_value(sources: Path, value: int | str) -> None:
    (sources / "value.cpp").write_text(f'#include "fixture.h"\n\nint64_t fixture_value() {{ return {value}; }}\n')


def object_mtimes(workdir: Path) -> dict[str, int]:
    return {str(path.relative_to(workdir)): path.stat().st_mtime_ns for path in workdir.rglob("*.o")}


def fixture_spec(sources: Path, build_root: Path, **kwargs) -> _build.BuildSpec:
    return _build.BuildSpec(name="build_fixture", source_dir=sources, build_root=build_root, **kwargs)


def fresh_sources(tmp_path: Path) -> Path:
    sources = tmp_path / "src"
    shutil.copytree(FIXTURE, sources)
    return sources


@dataclass
class Workspace:
    sources: Path
    root: Path

    @property
    def spec(self) -> _build.BuildSpec:
        return fixture_spec(self.sources, self.root)

    @property
    def workdir(self) -> Path:
        return _build.library_path(self.spec).parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """Fixture sources and a build root shared by the tests below, so that ops.cpp (several seconds) compiles once;
    each test sets value.cpp to what it needs and ninja recompiles only that."""
    base = tmp_path_factory.mktemp("workspace")
    space = Workspace(fresh_sources(base), base / "root")
    _build.build(space.spec)
    return space


# ------------------------------------------------------------------------------------------------ build and load


@pytest.mark.slow
def test_build_then_warm_load(workspace):
    set_value(workspace.sources, 7)
    first = load_answer(workspace.sources, workspace.root)
    assert first.stdout.strip() == "7"
    # The workspace fixture built once already: this is a rebuild, which no longer says "first import only".
    assert f"torch_foo: recompiling what changed in build_fixture in {workspace.workdir} ..." in first.stderr
    assert re.search(r"^\[\d+/\d+\] CXX value\.cpp$", first.stderr, re.MULTILINE), first.stderr
    assert re.search(r"^\[\d+/\d+\] LINK build_fixture$", first.stderr, re.MULTILINE), first.stderr
    assert " -c " not in first.stderr  # progress, not the compiler commands

    second = load_answer(workspace.sources, workspace.root)
    assert second.stdout.strip() == "7"
    assert second.stderr == ""


def test_warm_load_imports_no_cpp_extension_and_spawns_nothing(workspace):
    load_answer(workspace.sources, workspace.root)  # make sure the current sources are built
    code = PRELUDE + """
def refuse(*args, **kwargs):
    raise AssertionError("the warm path spawned a process")
subprocess.Popen = os.system = os.fork = os.posix_spawn = os.posix_spawnp = refuse
torch.ops.load_library(str(_build.ensure_built(spec)))
torch.ops.build_fixture.answer()
print("torch.utils.cpp_extension" in sys.modules, "filelock" in sys.modules)
"""
    result = run_python(code, workspace.sources, workspace.root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_editing_one_unit_recompiles_only_it_quietly(workspace):
    set_value(workspace.sources, 11)
    load_answer(workspace.sources, workspace.root)
    before = object_mtimes(workspace.workdir)

    set_value(workspace.sources, 12)
    result = load_answer(workspace.sources, workspace.root, TORCH_FOO_QUIET="1")
    assert result.stdout.strip() == "12"
    assert result.stderr == ""
    after = object_mtimes(workspace.workdir)
    assert sorted(name for name in after if after[name] != before.get(name)) == ["value.o"]




def test_warm_import_of_the_real_backend_imports_no_cpp_extension_and_spawns_nothing():
    import torch_foo  # noqa: F401  (builds the backend if needed, in this process)
    from helpers import run_python as run_in_repo

    result = run_in_repo("""
        import os, subprocess, sys
        def refuse(*args, **kwargs):
            raise AssertionError("the warm path spawned a process")
        subprocess.Popen = os.system = os.fork = os.posix_spawn = os.posix_spawnp = refuse
        import torch, torch_foo
        assert torch.ones(1, device="foo").is_foo
        print("torch.utils.cpp_extension" in sys.modules, "filelock" in sys.modules, "ninja" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False"]


def test_verbose_shows_commands_and_max_jobs_limits_ninja(workspace, monkeypatch):
    commands = []
    real_popen = subprocess.Popen

    def recording_popen(command, *args, **kwargs):
        commands.append(command)
        return real_popen(command, *args, **kwargs)

    monkeypatch.setattr(_build.subprocess, "Popen", recording_popen)
    monkeypatch.setenv("TORCH_FOO_VERBOSE", "1")
    monkeypatch.setenv("MAX_JOBS", "1")
    set_value(workspace.sources, 13)
    _build.build(workspace.spec)
    (ninja_command,) = [c for c in commands if Path(c[0]).name == "ninja" and "--version" not in c]
    assert ninja_command[1:] == ["-v", "-j", "1"]
    log = (workspace.workdir / "build.log").read_text()
    assert re.search(r"-c \S*value\.cpp -o value\.o", log), log  # the full command, not "CXX value.cpp"


@pytest.mark.slow
def test_compile_error_raises_build_error_and_keeps_the_last_good_build(workspace):
    set_value(workspace.sources, 21)
    load_answer(workspace.sources, workspace.root)

    set_value(workspace.sources, "undeclared_name_xyz")
    code = PRELUDE + """
try:
    _build.ensure_built(spec)
except ImportError as error:
    print(type(error).__name__)
    print(error)
"""
    result = run_python(code, workspace.sources, workspace.root, TORCH_FOO_QUIET="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("BuildError\n")
    assert re.search(r"value\.cpp:\d+:\d+: error: .*undeclared_name_xyz", result.stdout), result.stdout
    assert str(workspace.workdir) in result.stdout
    failed_build_log = (workspace.workdir / "build.log").stat().st_mtime_ns

    set_value(workspace.sources, 21)  # revert: the previous library loads as it is, without running ninja
    reverted = load_answer(workspace.sources, workspace.root)
    assert reverted.stdout.strip() == "21"
    assert COMPILING not in reverted.stderr
    assert (workspace.workdir / "build.log").stat().st_mtime_ns == failed_build_log


@pytest.mark.slow
def test_a_changed_file_with_an_old_mtime_is_recompiled(workspace):
    set_value(workspace.sources, 21)
    load_answer(workspace.sources, workspace.root)
    value = workspace.sources / "value.cpp"
    old = value.stat().st_mtime_ns - 3600 * 10**9
    set_value(workspace.sources, 34)  # as `cp -p` or `tar x` restoring an older copy would leave it
    os.utime(value, ns=(old, old))
    assert load_answer(workspace.sources, workspace.root).stdout.strip() == "34"
    header = workspace.sources / "fixture.h"
    content = header.read_text()

    def set_header_constant(number):
        header.write_text(content.replace("fixture_value();", f"fixture_value();\nconstexpr int64_t kValue = {number};"))

    try:
        set_header_constant(100)
        set_value(workspace.sources, "kValue")
        assert load_answer(workspace.sources, workspace.root).stdout.strip() == "100"
        set_header_constant(200)  # only the header changes, again behind the last build's back
        os.utime(header, ns=(old, old))
        assert load_answer(workspace.sources, workspace.root).stdout.strip() == "200"
    finally:
        header.write_text(content)
        set_value(workspace.sources, 21)


@pytest.mark.slow
def test_an_old_mtime_restore_after_a_failed_build_is_recompiled(workspace):
    set_value(workspace.sources, 21)
    load_answer(workspace.sources, workspace.root)
    value = workspace.sources / "value.cpp"
    good_content, good_mtime = value.read_text(), value.stat().st_mtime_ns
    broken = workspace.sources / "zz_broken.cpp"  # compiled after value.cpp
    extra = workspace.sources / "extra.cpp"
    try:
        set_value(workspace.sources, 22)
        broken.write_text("this is not C++\n")
        with pytest.raises(_build.BuildError):
            _build.build(workspace.spec)  # value.cpp's object now holds 22
        broken.unlink()
        value.write_text(good_content)  # restored as `cp -p` would: the old content and the old mtime
        os.utime(value, ns=(good_mtime, good_mtime))
        extra.write_text("int unused_extra_unit() { return 0; }\n")  # new sources: a new link, not the cached library
        assert load_answer(workspace.sources, workspace.root).stdout.strip() == "21"
    finally:
        broken.unlink(missing_ok=True)
        extra.unlink(missing_ok=True)
        set_value(workspace.sources, 21)


def test_undefined_symbol_fails_the_link_not_the_import(workspace):
    (workspace.sources / "value.cpp").write_text(
        "#include <cstdint>\nint64_t declared_but_never_defined_xyz();\n"
        "int64_t fixture_value() { return declared_but_never_defined_xyz(); }\n"
    )
    try:
        with pytest.raises(_build.BuildError, match="declared_but_never_defined_xyz"):
            _build.build(workspace.spec)
    finally:
        set_value(workspace.sources, 21)


@pytest.mark.parametrize("corruption", ["truncated", "garbage"])
def test_corrupted_library_is_detected_and_rebuilt(workspace, corruption):
    set_value(workspace.sources, 31)
    library = _build.build(workspace.spec)
    content = library.read_bytes()
    if corruption == "truncated":
        library.write_bytes(content[: len(content) // 2])
    else:
        library.write_bytes(os.urandom(len(content)))
    assert _build.find_built(workspace.spec) is None

    result = load_answer(workspace.sources, workspace.root)
    assert result.stdout.strip() == "31"
    assert "torch_foo: recompiling what changed in build_fixture" in result.stderr
    assert library.read_bytes() == content


def test_only_the_newest_libraries_are_kept(workspace):
    for value in range(41, 41 + _build.ARTIFACTS_KEPT + 2):
        set_value(workspace.sources, value)
        newest = _build.build(workspace.spec)
    libraries = sorted(newest.parent.glob("*.so"))
    assert len(libraries) == _build.ARTIFACTS_KEPT
    assert newest in libraries
    assert sorted(newest.parent.glob("*.json")) == [path.with_suffix(".json") for path in libraries]


def test_source_hash_covers_sources_and_headers_but_not_tests_or_build_dirs(tmp_path):
    sources = fresh_sources(tmp_path)
    spec = fixture_spec(sources, tmp_path / "root")
    original = _build.library_path(spec)

    (sources / "tests" / "more.cpp").write_text("ignored")
    (sources / "build-release" / "more.h").write_text("ignored")
    (sources / "notes.txt").write_text("ignored")
    assert _build.library_path(spec) == original

    with open(sources / "fixture.h", "a") as header:
        header.write("// edited\n")
    edited = _build.library_path(spec)
    assert edited.parent == original.parent  # same toolchain directory: ninja rebuilds incrementally
    assert edited != original

    builders = sources / "builders"  # a source directory whose name starts with "build" is an ordinary one
    builders.mkdir()
    (builders / "more.h").write_text("// hashed\n")
    assert _build.library_path(spec) != edited
    (builders / "more.cpp").write_text("int more() { return 1; }\n")
    assert "builders/more.cpp" in _build._scan_sources(spec)[0]


def test_sources_sharing_a_file_name_both_compile(workspace, tmp_path):
    """cpp_extension names objects after the file name alone: one/same.cpp and two/same.cpp must not overwrite each
    other's object."""
    sources = fresh_sources(tmp_path)
    for name, number in (("one", 1), ("two", 2)):
        (sources / name).mkdir()
        (sources / name / "same.cpp").write_text(f"int {name}() {{ return {number}; }}\n")
    library = _build.build(fixture_spec(sources, workspace.root))
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True).stdout
    assert "_Z3onev" in symbols and "_Z3twov" in symbols, symbols


def test_published_library_is_what_was_compiled_when_sources_change_during_the_build(workspace, monkeypatch):
    set_value(workspace.sources, 71)
    run_ninja = _build._run_ninja

    def edit_then_run_ninja(ninja, plan):
        set_value(workspace.sources, 99)  # after the build took its snapshot, before anything compiled
        run_ninja(ninja, plan)

    monkeypatch.setattr(_build, "_run_ninja", edit_then_run_ninja)
    published = _build.build(workspace.spec)
    monkeypatch.undo()
    set_value(workspace.sources, 71)
    assert _build.find_built(workspace.spec) == published  # published under the hash of value 71, its content
    assert load_answer(workspace.sources, workspace.root).stdout.strip() == "71"
    set_value(workspace.sources, 99)
    assert load_answer(workspace.sources, workspace.root).stdout.strip() == "99"


@pytest.mark.slow
def test_torch_headers_are_precompiled_once_and_shared_with_the_linked_library(tmp_path):
    """Units that include torch headers start from a precompiled header built with their own flags (GCC would say
    `not used because ...` under -Winvalid-pch otherwise); units that include none, and a library linked against one
    with the same header, do without building their own."""
    sources, root = fresh_sources(tmp_path), tmp_path / "root"
    set_value(sources, 81)
    (sources / "precompiled.h").write_text("#pragma once\n#include <torch/library.h>\n")
    (sources / "kernels" / "registered.cpp").write_text("#include <torch/library.h>\n\nint registered() { return 3; }\n")
    state = fixture_spec(sources, root, excluded_dirs=("kernels",), precompiled_header="precompiled.h")
    kernels = _build.BuildSpec(name="build_fixture_kernels", source_dir=sources, build_root=root, links=state,
                               compiled_dirs=("kernels",), precompiled_header="precompiled.h")
    _build.build(kernels)
    state_dir, kernels_dir = _build.library_path(state).parents[1], _build.library_path(kernels).parents[1]
    gch = state_dir / "pch" / "precompiled.h.gch"
    assert gch.is_file()
    assert not (kernels_dir / "pch").exists()

    def edges(workdir: Path) -> dict[str, str]:
        """object -> the build statement with its bindings"""
        text = (workdir / "build.ninja").read_text()
        return {m.group(1): m.group(0) for m in re.finditer(r"^build (\S+\.o): compile .*(?:\n  .*)*", text, re.M)}

    state_edges, kernels_edges = edges(state_dir), edges(kernels_dir)
    assert f"-include {state_dir}/pch/precompiled.h" in state_edges["ops.o"]
    assert "-include" not in state_edges["value.o"]
    assert f"-include {state_dir}/pch/precompiled.h" in kernels_edges["registered.o"]
    assert "-include" not in kernels_edges["twice.o"]
    assert "precompile_header" not in (kernels_dir / "build.ninja").read_text()
    for workdir in (state_dir, kernels_dir):
        assert "not used because" not in (workdir / "build.log").read_text()
    assert load_answer(sources, root).stdout.strip() == "81"


def test_a_reloadable_library_with_a_static_registration_is_refused(tmp_path):
    """A static TORCH_LIBRARY block registers while the library loads and can never be withdrawn: a reload would
    register it twice (an abort for a namespace definition)."""
    sources = fresh_sources(tmp_path)
    (sources / "kernels" / "static.cpp").write_text('#include <torch/library.h>\n\nTORCH_LIBRARY_IMPL(aten, CPU, m) {}\n')
    spec = fixture_spec(sources, tmp_path / "root", compiled_dirs=("kernels",), reloadable=True)
    with pytest.raises(_build.BuildError, match=rf"{re.escape(str(sources))}/kernels/static\.cpp:3: TORCH_LIBRARY_IMPL"):
        _build.build(spec)


def test_a_stale_cpp_extension_lock_file_does_not_hang_the_build(workspace):
    """cpp_extension waits forever on a lock file a killed build left behind; the build clears it under its OS lock."""
    set_value(workspace.sources, 72)
    (workspace.workdir / "lock").write_text("")
    result = run_python(PRELUDE + "print(_build.build(spec).name)", workspace.sources, workspace.root, timeout=300,
                        TORCH_FOO_QUIET="1")
    assert result.returncode == 0, result.stderr
    assert not (workspace.workdir / "lock").exists()


@pytest.mark.parametrize("value, accepted", [(73, True), (-11, False)], ids=["exceptions-work", "exceptions-crash"])
def test_a_toolchain_whose_exceptions_crash_is_refused_at_build_time(workspace, value, accepted):
    """The fixture's probe op segfaults for value -11, as every TORCH_CHECK with a formatted message did with a CXX
    wrapper script; the build must refuse to publish such a library, naming the compiler."""
    set_value(workspace.sources, value)
    spec = fixture_spec(workspace.sources, workspace.root, exception_probe="foo::raise_formatted_error")
    if accepted:
        assert _build.build(spec).exists()
        return
    with pytest.raises(_build.BuildError, match=r"cannot carry C\+\+ exceptions.*killed by signal 11") as refused:
        _build.build(spec)
    assert _build.info(spec)["compiler_version"] in str(refused.value)
    assert _build.find_built(spec) is None


# --------------------------------------------------------------------------------------------- crashes and races


def processes_working_in(directory: Path) -> list[int]:
    """Live processes (ninja, compilers) whose working directory is under directory."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cwd = os.readlink(entry / "cwd") if entry.name.isdigit() else ""
        except OSError:
            continue
        if cwd == str(directory) or cwd.startswith(f"{directory}/"):
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_import_after_a_build_killed_with_sigkill_succeeds(tmp_path):
    sources, root = fresh_sources(tmp_path), tmp_path / "root"
    set_value(sources, 51)
    victim = subprocess.Popen(
        [sys.executable, "-c", LOAD_AND_ANSWER, str(sources)],
        env=clean_env(root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        stderr = b""
        while COMPILING.encode() not in stderr or not processes_working_in(root):  # ninja is compiling
            assert time.monotonic() < deadline and victim.poll() is None, stderr.decode()
            if select.select([victim.stderr], [], [], 0.1)[0]:
                stderr += os.read(victim.stderr.fileno(), 4096)
        time.sleep(0.5)
        assert victim.poll() is None, "the build finished before it could be killed"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        victim.stderr.close()

    deadline = time.monotonic() + 30
    while processes_working_in(root):  # ninja and the compilers die with the importer
        assert time.monotonic() < deadline, f"left running: {processes_working_in(root)}"
        time.sleep(0.2)

    result = load_answer(sources, root)  # bounded by BUILD_TIMEOUT: a stale lock would hang here
    assert result.stdout.strip() == "51"


@pytest.mark.slow
def test_concurrent_cold_imports_build_once_and_all_load(tmp_path):
    sources, root = fresh_sources(tmp_path), tmp_path / "root"
    set_value(sources, 61)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", LOAD_AND_ANSWER, str(sources)],
            env=clean_env(root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [process.communicate(timeout=BUILD_TIMEOUT) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
        assert stdout.strip() == "61"
    assert sum(COMPILING in stderr for _, stderr in outputs) == 1
    assert sum("build_fixture (first import only, a few minutes on 2 cores)" in stderr for _, stderr in outputs) == 1


LOAD_PUBLISHED = PRELUDE + """
library = _build.find_built(spec)
if library is None:
    print("none")
else:
    torch.ops.load_library(str(library))
    print(torch.ops.build_fixture.answer())
"""


@pytest.mark.stress
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_builds_killed_or_edited_at_random_points_publish_only_what_they_compiled(request, tmp_path):
    """Fault injection: builds are SIGKILLed, have their sources edited, or both, at random points (the seed is
    printed). After each round, whatever library is published for a value answers that value, and a fresh import
    builds and answers the current one. BUILD_FAULT_ROUNDS sets the number of rounds (30 by default)."""
    if "stress" not in request.config.getoption("markexpr"):
        pytest.skip("fault-injection soak: select it with `pytest -m stress`")
    seed = int(os.environ.get("BUILD_FAULT_SEED", time.time_ns() % 100_000))
    print(f"BUILD_FAULT_SEED={seed}")
    rng = random.Random(seed)
    sources, root = fresh_sources(tmp_path), tmp_path / "root"
    for round_number in range(int(os.environ.get("BUILD_FAULT_ROUNDS", "30"))):
        started, edited = 1000 + round_number, 2000 + round_number
        set_value(sources, started)
        victim = subprocess.Popen([sys.executable, "-c", LOAD_AND_ANSWER, str(sources)], env=clean_env(root),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        fault = rng.choice(["kill", "edit", "edit-then-kill"])
        time.sleep(rng.uniform(0.0, 4.0))
        if fault.startswith("edit"):
            set_value(sources, edited)
            time.sleep(rng.uniform(0.0, 1.0))
        if fault.endswith("kill"):
            victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=BUILD_TIMEOUT)
        deadline = time.monotonic() + 30
        while processes_working_in(root):  # ninja and the compilers die with the importer
            assert time.monotonic() < deadline, f"left running: {processes_working_in(root)}"
            time.sleep(0.2)
        context = f"seed {seed}, round {round_number}, {fault}"
        for value in (started, edited):
            set_value(sources, value)
            published = run_python(LOAD_PUBLISHED, sources, root)
            assert published.returncode == 0, f"{context}: {published.stderr}"
            assert published.stdout.strip() in ("none", str(value)), f"{context}: sources say {value}"
        assert load_answer(sources, root).stdout.strip() == str(edited), context


# ------------------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("mode_bits", [0o002, 0o020], ids=["other-writable", "group-writable"])
@pytest.mark.parametrize("directory", ["root", "toolchain", "lib"])
def test_writable_build_directory_is_refused(workspace, directory, mode_bits):
    library = _build.build(workspace.spec)
    path = {"root": workspace.root, "toolchain": library.parents[1], "lib": library.parent}[directory]
    mode = path.stat().st_mode
    path.chmod(mode | mode_bits)
    try:
        with pytest.raises(_build.BuildError, match="writable by group or others"):
            _build.ensure_built(workspace.spec)
    finally:
        path.chmod(mode)


@pytest.mark.parametrize("mode_bits", [0o002, 0o020], ids=["other-writable", "group-writable"])
def test_writable_file_in_the_cache_is_refused(workspace, mode_bits):
    """Objects, ninja files and libraries are linked or loaded: any of them writable by others is refused."""
    set_value(workspace.sources, 74)
    _build.build(workspace.spec)
    set_value(workspace.sources, 75)
    victim = workspace.workdir / "ops.o"
    victim.chmod(victim.stat().st_mode | mode_bits)
    try:
        with pytest.raises(_build.BuildError, match=rf"refusing to use {re.escape(str(victim))}: it is writable"):
            _build.build(workspace.spec)
    finally:
        victim.chmod(0o644)


def test_symlinked_build_root_or_one_under_a_writable_directory_is_refused(tmp_path):
    sources = fresh_sources(tmp_path)
    spec_for = lambda root: fixture_spec(sources, root)  # noqa: E731
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(_build.BuildError, match="it is a symbolic link"):
        _build.build(spec_for(link))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by others and not sticky: anyone may rename the root away
    with pytest.raises(_build.BuildError, match=f"its parent directory {re.escape(str(shared))} is writable"):
        _build.build(spec_for(shared / "root"))
    shared.chmod(0o1777)  # sticky, as /tmp: only the owner may rename the root
    assert _build.library_path(spec_for(shared / "root"))


def test_clean_all_deletes_only_what_torch_foo_made(tmp_path):
    root = tmp_path / "root"
    spec = fixture_spec(fresh_sources(tmp_path), root)
    workdir = _build.library_path(spec).parents[1]  # creates root/compilers/
    _build._make_private_dirs(root, workdir / "lib")
    (root / f"{workdir.name}.lock").write_text("")
    for name in ("datasets", "models", "src"):
        (root / name).mkdir()
        (root / name / "keep.txt").write_text("precious")
    victim = tmp_path / "home"
    (victim / ".ssh").mkdir(parents=True)
    (root / "0123456789abcdef").symlink_to(victim)  # a toolchain-like name that is a link: followed by nothing

    removed, kept = _build.clean(spec, everything=True)

    assert sorted(removed) == sorted([root / "compilers", workdir, root / f"{workdir.name}.lock"])
    assert sorted(kept) == sorted(root / name for name in ("0123456789abcdef", "datasets", "models", "src"))
    assert all((root / name / "keep.txt").read_text() == "precious" for name in ("datasets", "models", "src"))
    assert (victim / ".ssh").is_dir()


def test_writable_empty_build_root_is_refused_before_building(tmp_path):
    root = tmp_path / "root"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    with pytest.raises(_build.BuildError, match=rf"refusing to use {re.escape(str(root))}: it is writable"):
        _build.build(fixture_spec(fresh_sources(tmp_path), root))
    assert list(root.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_build_root_owned_by_another_user_is_refused(workspace):
    library = _build.build(workspace.spec)
    os.chown(library.parent, 65534, -1)
    try:
        with pytest.raises(_build.BuildError, match="owned by uid 65534, not by you"):
            _build.find_built(workspace.spec)
    finally:
        os.chown(library.parent, os.geteuid(), -1)


def test_missing_ninja_says_to_pip_install_it(tmp_path, monkeypatch):
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None if name == "ninja" else which(name))
    with pytest.raises(ImportError, match=re.escape("pip install ninja")):
        _build.build(fixture_spec(fresh_sources(tmp_path), tmp_path / "root"))


def test_the_ninja_package_alone_is_enough(workspace, tmp_path, monkeypatch):
    """A venv that reaches another environment's site-packages has no ninja on PATH or beside its interpreter: the
    ninja package's own binary builds (also past cpp_extension, which looks on PATH only)."""
    real_ninja = shutil.which("ninja", path="/usr/bin:/bin") or pytest.skip("needs a ninja in /usr/bin")
    tools = tmp_path / "tools"  # /usr/bin without ninja
    tools.mkdir()
    for entry in Path("/usr/bin").iterdir():
        if entry.name != "ninja":
            (tools / entry.name).symlink_to(entry)
    package_bin = tmp_path / "ninja_package_bin"
    package_bin.mkdir()
    (package_bin / "ninja").symlink_to(real_ninja)
    get_path = sysconfig.get_path
    monkeypatch.setattr(sysconfig, "get_path",
                        lambda name, *args, **kwargs: str(tmp_path / "no_scripts") if name == "scripts"
                        else get_path(name, *args, **kwargs))
    monkeypatch.setitem(sys.modules, "ninja", types.SimpleNamespace(BIN_DIR=str(package_bin)))
    monkeypatch.setenv("PATH", str(tools))
    set_value(workspace.sources, 14)
    _build.build(workspace.spec)
    monkeypatch.undo()
    assert load_answer(workspace.sources, workspace.root).stdout.strip() == "14"


def test_missing_compiler_says_to_install_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    with pytest.raises(_build.BuildError, match=re.escape("apt-get install g++")):
        _build.build(fixture_spec(fresh_sources(tmp_path), tmp_path / "root"))


# ------------------------------------------------------------------------------------------------- keys and specs


def test_key_changes_with_torch_version_git_version_compiler_python_abi_and_flags(tmp_path, monkeypatch):
    spec = fixture_spec(fresh_sources(tmp_path), tmp_path / "root")
    toolchain_dir = _build.library_path(spec).parents[1]

    def toolchain_dir_with(change):
        with monkeypatch.context() as patch:
            change(patch)
            return _build.library_path(spec).parents[1]

    keys = {
        toolchain_dir,
        toolchain_dir_with(lambda patch: patch.setattr(torch, "__version__", "2.99.0")),
        toolchain_dir_with(lambda patch: patch.setattr(torch.version, "git_version", "0" * 40)),
        toolchain_dir_with(lambda patch: patch.setenv("CXX", "g++")),
        toolchain_dir_with(lambda patch: patch.setattr(_build, "_python_abi", lambda: "cpython-399-x86_64-linux-gnu")),
        _build.library_path(fixture_spec(spec.source_dir, tmp_path / "root", extra_cflags=("-O3",))).parents[1],
    }
    assert len(keys) == 6
    assert _build.library_path(spec).parents[1] == toolchain_dir


def test_backend_spec_sources_and_sanitizer_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCH_FOO_SANITIZE", raising=False)
    monkeypatch.delenv("TORCH_FOO_SOURCE_DIR", raising=False)
    plain, kernels, distributed = _build.backend_specs()
    assert (plain.name, kernels.name, distributed.name) == ("torch_foo_C", "torch_foo_kernels", "torch_foo_distributed")
    assert plain.source_dir == kernels.source_dir == distributed.source_dir == REPO / "csrc"
    assert plain.excluded_dirs == ("kernels", "distributed") and kernels.links == distributed.links == plain
    assert kernels.compiled_dirs == distributed.excluded_dirs == ("kernels",)
    assert distributed.compiled_dirs == kernels.excluded_dirs == ("distributed",)
    assert {"-O2", "-DNDEBUG", "-fno-semantic-interposition", "-fno-plt"} <= set(plain.extra_cflags)
    assert plain.extra_ldflags == ("-Wl,-Bsymbolic-functions",)  # calls within a library bind directly

    monkeypatch.setenv("TORCH_FOO_SOURCE_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_FOO_SANITIZE", "undefined, address")
    sanitized = _build.backend_specs().state
    assert sanitized.source_dir == tmp_path
    flags = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g")
    assert set(flags) <= set(sanitized.extra_cflags)
    assert "-DNDEBUG" not in sanitized.extra_cflags  # debug checks stay
    assert sanitized.extra_ldflags == ("-Wl,-Bsymbolic-functions", *flags)

    sources, root = fresh_sources(tmp_path), tmp_path / "root"
    plain_key = _build.library_path(fixture_spec(sources, root, extra_cflags=plain.extra_cflags))
    sanitized_key = _build.library_path(fixture_spec(sources, root, extra_cflags=sanitized.extra_cflags))
    assert plain_key.parents[1] != sanitized_key.parents[1]

    monkeypatch.setenv("TORCH_FOO_SANITIZE", "memory")
    with pytest.raises(_build.BuildError, match="unknown sanitizer"):
        _build.backend_specs()


def test_build_root_resolution(tmp_path, monkeypatch):
    spec = fixture_spec(fresh_sources(tmp_path), None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TORCH_FOO_BUILD_DIR", raising=False)
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    assert _build.info(spec)["build_root"] == str(tmp_path / "home" / ".cache" / "torch_foo")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    assert _build.info(spec)["build_root"] == str(tmp_path / "extensions" / "torch_foo")
    monkeypatch.setenv("TORCH_FOO_BUILD_DIR", str(tmp_path / "mine"))
    assert _build.info(spec)["build_root"] == str(tmp_path / "mine")
    assert _build.library_path(spec).is_relative_to(tmp_path / "mine")


# ------------------------------------------------------------------------------------------------------------ CLI


@pytest.mark.slow
def test_cli_info_rebuild_clean(tmp_path):
    sources, root = fresh_sources(tmp_path), tmp_path / "root"
    code = f"""
import sys, types
package = types.ModuleType("torch_foo")
package.__path__ = [{str(PACKAGE_DIR)!r}]
sys.modules["torch_foo"] = package
from torch_foo.__main__ import main
sys.exit(main(sys.argv[1:]))
"""

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=clean_env(root, TORCH_FOO_SOURCE_DIR=str(sources)),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    info = cli()
    assert re.search(rf"^torch: +{re.escape(torch.__version__)} ", info, re.MULTILINE), info
    for library in ("state", "kernels", "distributed"):
        assert re.search(rf"^{library} key: +[0-9a-f]{{16}}-[0-9a-f]{{16}}$", info, re.MULTILINE), info
        assert re.search(rf"^{library} dir: +{re.escape(str(root))}/", info, re.MULTILINE), info
    assert re.findall(r"^\w+ cached: +(yes|no)", info, re.MULTILINE) == ["no", "no", "no"], info
    built = cli("rebuild")
    assert re.findall(r"^built .*/(torch_foo_C|torch_foo_kernels|torch_foo_distributed)-", built, re.MULTILINE) == [
        "torch_foo_C", "torch_foo_kernels", "torch_foo_distributed"], built
    assert re.findall(r"^\w+ cached: +(yes|no)", cli("info"), re.MULTILINE) == ["yes", "yes", "yes"]
    assert "removed" in cli("clean")
    assert re.findall(r"^\w+ cached: +(yes|no)", cli("info"), re.MULTILINE) == ["no", "no", "no"]


@pytest.mark.parametrize(
    "env, message",
    [({"TORCH_FOO_SANITIZE": "adress"}, "unknown sanitizer"),
     ({"TORCH_FOO_BUILD_DIR": "/proc/version"}, "cannot create the build directory /proc/version/compilers")],
    ids=["sanitizer-typo", "root-is-a-file"],
)
def test_cli_reports_a_bad_setup_without_a_traceback(tmp_path, env, message):
    result = subprocess.run([sys.executable, "-m", "torch_foo", "info"], cwd=REPO,
                            env=clean_env(tmp_path / "root", **env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_invoked_as_cli_only_under_python_dash_m(tmp_path):
    # A stand-in package named torch_foo whose __init__ reports what it sees.
    package = tmp_path / "torch_foo"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(PACKAGE_DIR / '_build.py')!r})\n"
        "build = sys.modules['b'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(build)\n"
        "print(build.invoked_as_cli())\n"
    )
    (package / "__main__.py").write_text("")

    def run(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=clean_env(tmp_path / "root"), capture_output=True, text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert run("-m", "torch_foo") == "True"
    assert run("-c", "import torch_foo") == "False"
