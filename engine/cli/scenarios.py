"""Commands on scenario files: ``validate``, ``show``, ``list`` and ``schema``."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from .._terminal import terminal_safe
from ..errors import ScenarioError
from .common import EXIT_OK, EXIT_USAGE, shown


def cmd_validate(args) -> int:
    from ..scenario.loader import load_scenario
    from ..scenario.loader import load_strategy_file
    from ..scenario.strategy_files import is_strategy_file

    failed = 0
    for file in args.files:
        strategy_file = is_strategy_file(file)  # strategies: and no market:, horizon: or extends:
        try:
            scenario = load_strategy_file(file, args.overrides) if strategy_file else load_scenario(file, args.overrides)
        except ScenarioError as exc:
            failed += 1
            if args.json:
                print(json.dumps({"file": str(file), "valid": False,
                                  "problems": [problem.to_dict() for problem in exc.problems]}))
                continue
            message = str(exc)
            if not any(p.file == str(file) for p in exc.problems):  # all in a parent file or a --set
                message = terminal_safe(f"in {file}:\n  ") + message.replace("\n", "\n  ")
            print(message, file=sys.stderr)
            continue
        if strategy_file:
            _validated_strategy_file(args, file, scenario)
            continue
        from ..resources import validate_problems

        too_big = validate_problems(scenario)  # more memory than this machine has, even without fans
        if too_big:
            failed += 1
            if args.json:
                print(json.dumps({"file": str(file), "valid": False,
                                  "problems": [problem.to_dict() for problem in too_big]}))
            else:
                message = str(ScenarioError(too_big))
                if not any(p.file == str(file) for p in too_big):  # n_paths set in a parent file or a --set
                    message = f"in {file}:\n  " + message
                print(message, file=sys.stderr)
        elif args.json:
            print(json.dumps({"file": str(file), "valid": True, "name": scenario.name, "problems": []}))
        elif not args.quiet:
            print(terminal_safe(f"ok  {file}  ({scenario.name}: {len(scenario.shocks)} shocks, "
                                f"{scenario.horizon.n_steps} steps x {scenario.n_paths} paths)"))
        if not too_big and not args.json:
            from ..scenario.catalog import uncalibrated_note

            note = uncalibrated_note(scenario, file)
            if note:
                print(terminal_safe(f"note: {note}"), file=sys.stderr)
    if failed:
        print(f"{failed} of {len(args.files)} files invalid", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _validated_strategy_file(args, file: Path, model) -> None:
    labels = [s.label for s in model.strategies]
    if args.json:
        print(json.dumps({"file": str(file), "valid": True, "kind": "strategies", "name": file.stem,
                          "strategies": labels, "problems": []}))
    elif not args.quiet:
        print(terminal_safe(f"ok  {file}  (strategy file, {len(labels)} rule{'s' if len(labels) != 1 else ''}: "
                            f"{', '.join(labels)})"))


def cmd_show(args) -> int:
    from ..scenario.canonical import dump_scenario
    from ..scenario.loader import load_scenario

    scenario = load_scenario(args.file, args.overrides)
    if args.compiled:
        from ..compile.compiler import compile_scenario

        print(compile_scenario(scenario).describe())
    else:
        from ..scenario.catalog import uncalibrated_note

        text = dump_scenario(scenario)
        note = uncalibrated_note(scenario, args.file)
        if note:  # under the header, as a comment: the output stays a loadable scenario
            head, _, rest = text.partition("\n")
            text = f"{head}\n" + "".join(f"# {line}\n" for line in textwrap.wrap(f"note: {note}", 98)) + rest
        sys.stdout.write(text)
    return EXIT_OK


def cmd_list(args) -> int:
    from ..scenario.catalog import list_scenarios, list_strategies
    from ..scenario.library import scenarios_dir

    root = args.dir or scenarios_dir()
    rows = list_scenarios(root)
    if not rows:
        print(f"no scenarios in {root}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(str(path.relative_to(root))) for path, _, _ in rows)
    for path, _, line in rows:  # file names and descriptions are file content: printed inert
        print(terminal_safe(f"{str(path.relative_to(root)):<{width}}  {line}"))
    strategies = list_strategies(root)
    if strategies:
        folders = ", ".join(dict.fromkeys(shown(path.parent) for path, _, _ in strategies))
        print(f"\nstrategies (in {folders}; a scenario takes one with `- use: NAME` in its strategies:)")
        width = max(len(name) for _, name, _ in strategies)
        for _, name, line in strategies:
            print(terminal_safe(f"{name:<{width}}  {line}"))
    return EXIT_OK


def cmd_schema(args) -> int:
    if args.markdown:
        from ..scenario.reference import schema_markdown

        text = schema_markdown()
    else:
        from ..scenario.canonical import scenario_json_schema

        text = json.dumps(scenario_json_schema(args.draft), indent=2) + "\n"
    if args.output:
        from .._files import check_output_file

        check_output_file(args.output, "-o/--output")
        from .._atomic import write_text

        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK
