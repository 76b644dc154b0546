"""The ``cascade`` command.

User errors (a bad scenario, a bad flag) print a located message and exit 2, with no traceback.

One module per kind of command, each handler ``cmd_<command>(args) -> exit code``:

* :mod:`.parser`: every subcommand and its flags;
* :mod:`.scenarios`: ``validate``, ``show``, ``list``, ``schema``;
* :mod:`.runs`: ``run``, ``rerun``, ``report``, ``compare``, ``check``;
* :mod:`.analysis`: ``sweep``, ``breakpoint``, ``attribute``;
* :mod:`.history`: ``backtest``, ``replay``, ``surface``, ``stylised``;
* :mod:`.calibrate`: ``calibrate``;
* :mod:`.common`: exit codes, output and memory checks, progress bars.
"""

from __future__ import annotations

import sys

from .._terminal import terminal_safe
from ..errors import RunFolderError, ScenarioError
from . import analysis, calibrate, history, runs, scenarios
from .common import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from .parser import build_parser

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE"]

_COMMANDS = {
    "validate": scenarios.cmd_validate, "show": scenarios.cmd_show, "list": scenarios.cmd_list,
    "schema": scenarios.cmd_schema,
    "run": runs.cmd_run, "rerun": runs.cmd_rerun, "report": runs.cmd_report, "compare": runs.cmd_compare,
    "check": runs.cmd_check,
    "sweep": analysis.cmd_sweep, "breakpoint": analysis.cmd_breakpoint, "attribute": analysis.cmd_attribute,
    "backtest": history.cmd_backtest, "replay": history.cmd_replay, "surface": history.cmd_surface,
    "stylised": history.cmd_stylised,
    "calibrate": calibrate.cmd_calibrate,
}

# a Python argument -> the flag that sets it, where the names differ (else ``--name-with-dashes``)
_FLAGS = {"n_paths": "--paths", "n_jobs": "--jobs", "overrides": "--set", "shock_key": "--shock", "lo": "--range",
          "hi": "--range", "directory": "--dir"}


def _under_flags(exc: ScenarioError) -> ScenarioError:
    """``exc`` with each problem about a Python argument (source ``direction=``, an
    :class:`~engine.errors.InvalidParameterError`'s) under the flag that sets it (``--direction``)."""
    from dataclasses import replace

    if not any(p.parameter for p in exc.problems):
        return exc
    return ScenarioError([replace(p, source=_FLAGS.get(p.parameter, "--" + p.parameter.replace("_", "-")))
                          if p.parameter else p for p in exc.problems])


def _compile_notice(message: str) -> None:
    print(f"cascade: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .. import _notice

    _notice.on_compile = _compile_notice
    try:
        return _COMMANDS[args.command](args)
    except ScenarioError as exc:  # an InvalidParameterError too: shown under the flag (--jobs), not the argument
        print(str(_under_flags(exc)), file=sys.stderr)
        return EXIT_USAGE
    except RunFolderError as exc:  # it may quote a manifest's content
        print(terminal_safe(f"cascade {args.command}: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cascade show x | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
