"""Compare the kernel of two commits one-for-one, in one process, round after round.

    python bench/ab_kernel.py HEAD~1 HEAD                  # 1 thread, 256 paths, 15 rounds
    python bench/ab_kernel.py main WORKTREE --threads 2 --paths 10000

On a shared VM the machine's speed drifts by about 10% over minutes, more than most single
changes to the kernel are worth, so timing two versions in two separate runs says little. This
script loads both versions side by side (each ref's ``engine/`` is exported with ``git archive``
into a temporary directory as a package of its own; ``WORKTREE`` is the working tree), compiles
the same scenario with each, and alternates them: every round times each version's kernel
(``result.timings["simulate_s"]``, the best of 3 calls), and the verdict is the median over
rounds of the per-round ratio B/A. Both versions share the drift of every round, so the ratio
holds to about 1% where separate runs disagree by 10%.

Prints nanoseconds per path-step (per thread: wall time x threads / path-steps) for each version
and the median ratio. Measures, never asserts; exits 2 on a bad ref.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"


def export(ref: str, tag: str, into: Path) -> Path:
    """``engine/`` at ``ref`` (or the working tree) as the package ``engine_<tag>`` under ``into``."""
    target = into / tag
    target.mkdir()
    if ref == "WORKTREE":
        shutil.copytree(ROOT / "engine", target / f"engine_{tag}",
                        ignore=shutil.ignore_patterns("__pycache__"))
        return target
    archive = subprocess.run(["git", "archive", ref, "engine"], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        print(f"ab_kernel: cannot export {ref!r}: {archive.stderr.decode().strip()}", file=sys.stderr)
        sys.exit(2)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    (target / "engine").rename(target / f"engine_{tag}")
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref_a")
    ap.add_argument("ref_b")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--paths", type=int, default=256)
    ap.add_argument("--scenario", default=str(FLAGSHIP))
    ap.add_argument("--set", action="append", default=["horizon.duration=30d"],
                    help="scenario override (repeatable; default horizon.duration=30d)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ab-kernel-") as tmp:
        versions = {}
        for tag, ref in (("a", args.ref_a), ("b", args.ref_b)):
            path = export(ref, tag, Path(tmp))
            sys.path.insert(0, str(path))
            eng = importlib.import_module(f"engine_{tag}")
            if not eng.run.__module__.startswith(f"engine_{tag}."):
                # before the package imported itself relatively, the copy ran the installed engine
                print(f"ab_kernel: {ref!r} imports the installed engine by absolute name "
                      f"({eng.run.__module__}), so it cannot be timed against another version",
                      file=sys.stderr)
                return 2
            compiled = eng.compile_scenario(eng.load_scenario(args.scenario, args.set), n_paths=args.paths)
            eng.run(compiled, n_jobs=args.threads, keep_steps=False)  # compile (or load) the kernel
            versions[tag] = (ref, eng, compiled)
            print(f"{tag}: {ref} loaded", file=sys.stderr)

        per_step = {tag: [] for tag in versions}
        for r in range(args.rounds):
            for tag, (_, eng, compiled) in versions.items():
                best = min(eng.run(compiled, n_jobs=args.threads, keep_steps=False).timings["simulate_s"]
                           for _ in range(3))
                per_step[tag].append(best * args.threads / (compiled.n_paths * compiled.n_steps) * 1e9)
            print(f"round {r + 1}/{args.rounds}: a {per_step['a'][-1]:.1f}  b {per_step['b'][-1]:.1f} ns",
                  file=sys.stderr)

    ratios = [b / a for a, b in zip(per_step["a"], per_step["b"])]
    compiled = versions["a"][2]
    print(f"{compiled.n_paths:,} paths x {compiled.n_steps} steps, {args.threads} thread(s), "
          f"{args.rounds} rounds (best of 3 calls each); ns per path-step per thread")
    for tag, (ref, _, _) in versions.items():
        v = per_step[tag]
        print(f"  {tag}  {ref:<20}  median {statistics.median(v):6.1f}  min {min(v):6.1f}")
    print(f"  b/a  median ratio {statistics.median(ratios):.3f}  (range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
