"""What the commands share: exit codes, checks of output locations and memory before any work,
progress bars (on a terminal only: not in CI, not with ``--json``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def bad_out(args, command: str) -> bool:
    """``--out``/``--no-save`` refused before any work: both given (printed, True), or a run folder
    that cannot be written or already holds files (a ScenarioError: exit 2, located)."""
    if args.out is not None and args.no_save:
        print(f"cascade {command}: --out and --no-save contradict each other", file=sys.stderr)
        return True
    if not args.no_save:  # writable and empty, before the simulation runs
        check_out_dir(args.out, "--out", must_be_empty=True)
    return False


def check_out_dir(out: Path | None, flag: str, *, must_be_empty: bool = False) -> None:
    """Refuse, before any work, a results folder that cannot be written; ``None`` checks the default
    ``results/`` folder under the current directory. ``must_be_empty``: a folder given (a run folder,
    which is never written into one that holds files) must be missing or empty; the default
    ``results/`` folder only gets a new subfolder, so it may hold anything."""
    from .._files import check_output_dir

    if out is None:
        check_output_dir(Path("results"), f"{flag} (default results folder)")
    else:
        check_output_dir(out, flag, must_be_empty=must_be_empty)


def shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"


def refuse_too_large(args, keep_steps: bool = False, no_save: bool = False):
    """``args.file`` loaded (with ``--set``), refused before any work if a run of it (``--paths``)
    does not fit in memory; the per-step fans are counted if ``keep_steps`` or the scenario has
    strategies. The scenario is returned, to be passed on (its overrides already applied)."""
    from ..resources import check_memory
    from ..scenario.loader import load_scenario

    scenario = load_scenario(args.file, args.overrides)
    check_memory(scenario, n_paths=args.paths, keep_steps=keep_steps or bool(scenario.strategies), no_save=no_save)
    return scenario


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
