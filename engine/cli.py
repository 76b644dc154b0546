"""The ``cascade`` command.

User errors (a bad scenario, a bad flag) print a located message and exit 2, with no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ScenarioError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 too; keep its usage line short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"cascade: error: {message}\n")


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override a value, e.g. --set n_paths=2000 --set shocks[warsh].depth_multiplier=0.5",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="cascade", description="Stress scenarios for leveraged crypto markets.")
    parser.add_argument("--version", action="version", version=f"cascade-engine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", help="check scenario files; exit 0 if all are valid, 2 otherwise")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per file (for CI annotations and editors)")
    _add_set(p)

    p = sub.add_parser("show", help="print the resolved scenario as canonical YAML")
    p.add_argument("file", type=Path)
    _add_set(p)
    p.add_argument("--compiled", action="store_true", help="print a summary of the compiled arrays instead")

    p = sub.add_parser("list", help="the shipped scenarios with one-line descriptions")
    p.add_argument("--dir", type=Path, default=None, help="scenario folder (default: ./scenarios)")

    p = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    p.add_argument("--markdown", action="store_true", help="print the schema reference as Markdown")
    p.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    return parser


def _cmd_validate(args) -> int:
    from .scenario.loader import load_scenario

    failed = 0
    for file in args.files:
        try:
            scenario = load_scenario(file, args.overrides)
        except ScenarioError as exc:
            failed += 1
            if args.json:
                print(json.dumps({"file": str(file), "valid": False,
                                  "problems": [problem.to_dict() for problem in exc.problems]}))
                continue
            message = str(exc)
            if not any(p.file == str(file) for p in exc.problems):  # all in a parent file or a --set
                message = f"in {file}:\n  " + message.replace("\n", "\n  ")
            print(message, file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": str(file), "valid": True, "name": scenario.name, "problems": []}))
        elif not args.quiet:
            print(f"ok  {file}  ({scenario.name}: {len(scenario.shocks)} shocks, "
                  f"{scenario.horizon.n_steps} steps x {scenario.n_paths} paths)")
    if failed:
        print(f"{failed} of {len(args.files)} files invalid", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _cmd_show(args) -> int:
    from .scenario.canonical import dump_scenario
    from .scenario.loader import load_scenario

    scenario = load_scenario(args.file, args.overrides)
    if args.compiled:
        from .compile.compiler import compile_scenario

        print(compile_scenario(scenario).describe())
    else:
        sys.stdout.write(dump_scenario(scenario))
    return EXIT_OK


def _cmd_list(args) -> int:
    from .scenario.library import list_scenarios, scenarios_dir

    root = args.dir or scenarios_dir()
    rows = list_scenarios(root)
    if not rows:
        print(f"no scenarios in {root}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(str(path.relative_to(root))) for path, _, _ in rows)
    for path, _, line in rows:
        print(f"{str(path.relative_to(root)):<{width}}  {line}")
    return EXIT_OK


def _cmd_schema(args) -> int:
    if args.markdown:
        from .scenario.reference import schema_markdown

        text = schema_markdown()
    else:
        from .scenario.canonical import scenario_json_schema

        text = json.dumps(scenario_json_schema(), indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


_COMMANDS = {"validate": _cmd_validate, "show": _cmd_show, "list": _cmd_list, "schema": _cmd_schema}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cascade show x | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
