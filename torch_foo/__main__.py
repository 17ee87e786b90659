"""python -m torch_foo [info | rebuild | clean [--all]]: inspect and manage the backend's build cache.

Works without the backend loaded, so it can report on and repair a cache that does not build or load.
"""

import argparse
import sys

from . import _build


def _print_info(specs: _build.BackendSpecs) -> None:
    facts = _build.info(specs.state)
    rows = [
        ("torch", f"{facts['torch']} (git {facts['torch_git']})"),
        ("python ABI", facts["python_abi"]),
        ("compiler", f"{facts['compiler']} ({facts['compiler_path']}): {facts['compiler_version']}"),
        ("sources", facts["source_dir"]),
    ]
    for label, spec in zip(specs._fields, specs):
        facts = _build.info(spec)
        builder = "the first process group on foo" if spec is specs.distributed else "the next `import torch_foo`"
        rows += [
            (f"{label} key", facts["key"]),
            (f"{label} dir", facts["build_dir"]),
            (f"{label} lib", facts["library"]),
            (f"{label} cached", "yes" if facts["cached"] else f"no ({builder} builds it)"),
        ]
    for label, value in rows:
        print(f"{label + ':':<19} {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torch_foo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("info", help="show the toolchain, build keys and directories, and whether builds are cached")
    commands.add_parser("rebuild", help="recompile the backend from scratch")
    clean_parser = commands.add_parser("clean", help="delete the cached builds for the current toolchain")
    clean_parser.add_argument(
        "--all", action="store_true", help="delete every build torch_foo made in the build root (nothing else)"
    )
    args = parser.parse_args(argv)

    try:
        specs = _build.backend_specs()
        if args.command == "rebuild":
            for spec in specs:
                print(f"built {_build.build(spec, force=True)}")
        elif args.command == "clean":
            removed, kept = [], []
            for spec in specs[:1] if args.all else specs:
                spec_removed, kept = _build.clean(spec, everything=args.all)
                removed += spec_removed
            print("\n".join(f"removed {path}" for path in removed) or "nothing to remove")
            if args.all and kept:
                print("\n".join(f"kept {path} (not made by torch_foo)" for path in kept))
        else:
            _print_info(specs)
    except (_build.BuildError, OSError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
