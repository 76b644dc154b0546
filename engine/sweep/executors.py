"""Where a sweep's chunks run: joblib's loky, threading or sequential backends, or a Dask cluster
through joblib's dask backend; interruptions and the loky workers' shutdown."""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
from pathlib import Path

from .chunks import SharedRun


BACKENDS = ("loky", "threading", "sequential", "dask")


@contextlib.contextmanager
def terminate_interrupts():
    """SIGTERM raises KeyboardInterrupt in the main thread while a sweep runs, so that its cleanup
    (the loky workers shut down, the lock released) runs as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def kill_loky_workers() -> None:
    """Shut down loky's reusable executor, killing its workers (after an interruption or a
    failure: tasks in flight are lost, their chunks are computed again on resume)."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


class Executor:
    """joblib's Parallel for a backend name; Dask through joblib's dask backend and a Client."""

    def __init__(self, backend: str, n_jobs: int, scheduler: str | None, dask_local: int | None):
        self.backend, self.n_jobs = backend, n_jobs
        self.client = self.cluster = None
        if scheduler or dask_local:
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:
                raise RuntimeError("Dask is not installed: pip install 'cascade-engine[dask]'") from None
            if scheduler:
                self.client = Client(scheduler, timeout="20s")
            else:
                self.cluster = LocalCluster(n_workers=dask_local, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address=None)
                self.client = Client(self.cluster)
            self.backend = "dask"
            self.n_jobs = -1

    @property
    def sequential(self) -> bool:
        """Whether the tasks run one after the other in this process (no joblib)."""
        return self.backend == "sequential" or (self.n_jobs == 1 and self.backend != "dask")

    def share(self, result, folder: Path):
        """``result`` in the form this executor's workers take it: the object itself in this
        process, a shallow copy for Dask (scattered once to each worker by :meth:`map`; a copy,
        so that the caller may go on caching tables on the original while it is pickled), files
        in ``folder`` for loky (:class:`SharedRun`)."""
        if self.sequential or self.backend == "threading":
            return result
        if self.backend == "dask":
            return copy.copy(result)
        return SharedRun(result, folder)

    def map(self, fn, args, scatter=()):
        import joblib

        if self.sequential:
            for a in args:
                yield fn(*a)
            return
        extra = {"scatter": list(scatter)} if self.backend == "dask" and scatter else {}
        with joblib.parallel_config(backend=self.backend, n_jobs=self.n_jobs, **extra):
            yield from joblib.Parallel(return_as="generator_unordered")(joblib.delayed(fn)(*a) for a in args)

    def close(self):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
