"""What the commands share: exit codes, checks of output locations and memory before any work,
progress bars (on a terminal only: not in CI, not with ``--json``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def bad_out(args, command: str) -> bool:
    """``--out``/``--no-save`` refused before any work (printed): both given, or an --out that holds files."""
    if args.out is not None and args.no_save:
        print(f"cascade {command}: --out and --no-save contradict each other", file=sys.stderr)
        return True
    if args.out is not None and args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        print(f"cascade {command}: --out {args.out}: already exists and is not empty", file=sys.stderr)
        return True
    if not args.no_save:  # writable, before the simulation runs (a ScenarioError: exit 2, located)
        check_out_dir(args.out, "--out")
    return False


def check_out_dir(out: Path | None, flag: str, **kw) -> None:
    """Refuse, before any work, a results folder that cannot be written; ``None`` checks the default
    ``results/`` folder under the current directory."""
    from .._files import check_output_dir

    check_output_dir(out if out is not None else Path("results"),
                     flag if out is not None else f"{flag} (default results folder)", **kw)


def shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"


def refuse_too_large(args, keep_steps: bool | None, no_save: bool = False) -> None:
    """Refuse, before any work, a run of ``args.file`` (with ``--paths``, ``--set``) that does not fit in
    memory; ``keep_steps=None``: the per-step fans only if the scenario has strategies."""
    from ..resources import check_memory
    from ..scenario.loader import load_scenario

    scenario = load_scenario(args.file, args.overrides)
    keep = bool(scenario.strategies) if keep_steps is None else keep_steps
    check_memory(scenario, n_paths=args.paths, keep_steps=keep or bool(scenario.strategies), no_save=no_save)


def in_ci() -> bool:
    """Whether the ``CI`` environment variable says this is a CI job (``CI=true``, as GitHub
    Actions, GitLab and most runners set it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def wants_bar(args) -> bool:
    """A progress bar only for a person watching: stderr is a terminal, no ``--json`` or
    ``--no-progress``, and not in CI (whose logs keep every redraw)."""
    return (not getattr(args, "json", False) and not getattr(args, "no_progress", False) and not in_ci()
            and sys.stderr.isatty())


def progress_bar(args, total: int, unit: str, desc: str):
    """A tqdm bar on stderr when :func:`wants_bar`, else a disabled one (its calls do nothing)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, leave=False, dynamic_ncols=True, disable=not wants_bar(args))
