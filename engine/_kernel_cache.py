"""Numba's on-disk cache, keyed on every kernel source rather than on each function's own file.

Numba stamps a cached function with a hash of the one file that defines it. The kernels inline
functions from their neighbours (:mod:`engine.nb.hedge` inlines :mod:`engine.nb.bs`'s
Black-Scholes) and freeze constants from :mod:`engine.compile.layout` (column numbers) and the
settings of :mod:`engine.nb.config`; a change to one of those left the cached kernels of the
other files as they were: a ``git pull`` that changed ``nb/bs.py`` kept booking the old prices
until the cache was cleared by hand.

:func:`install` puts, in front of numba's own cache locators, one subclass of each whose source
stamp is a hash of all of those files (``engine/nb/*.py`` and ``engine/compile/layout.py``) beside
numba's own stamp of the function's file, for every function defined in the ``engine`` package
(``engine/options/black_scholes.py`` loops over ``nb/bs.py``'s pricers, inlined like the kernels'):
a change to any kernel source recompiles every cached function of the package once, and any
other library's cache is untouched. Where the cache goes is numba's choice as
before (``__pycache__`` beside the source, ``NUMBA_CACHE_DIR``, ...). Numba's cache internals are
private; if they change, :func:`install` leaves numba's behaviour alone rather than fail.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

__all__ = ["install", "kernel_stamp", "kernel_sources"]

_installed: set[Path] = set()


def kernel_sources(nb_dir: Path) -> list[Path]:
    """The files whose content every cached kernel depends on."""
    return sorted(nb_dir.glob("*.py")) + [nb_dir.parent / "compile" / "layout.py"]


@functools.lru_cache(maxsize=None)
def _hash(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for path, _, _ in files:  # mtime and size in the key: a file changed in the process is hashed again
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return digest.hexdigest()


def kernel_stamp(nb_dir: Path) -> str:
    """A hash of the content of :func:`kernel_sources`."""
    files = []
    for path in kernel_sources(nb_dir):
        st = os.stat(path)
        files.append((str(path), st.st_mtime_ns, st.st_size))
    return _hash(tuple(files))


def install(settings_file: str | Path) -> bool:
    """Stamp the cache of every function defined in the package above the folder of
    ``settings_file`` (``engine/nb/config.py``) with :func:`kernel_stamp` and numba's own stamp of
    its file; ``False`` when numba's cache internals are not what this expects (nothing is changed
    then)."""
    nb_dir = Path(settings_file).resolve().parent
    package = nb_dir.parent
    if nb_dir in _installed:
        return True
    try:
        from numba.core import caching

        bases = [c for c in caching.CacheImpl._locator_classes
                 if issubclass(c, caching._SourceFileBackedLocatorMixin)]
    except (ImportError, AttributeError):  # pragma: no cover - another numba
        return False

    def stamped(base):
        def from_function(cls, py_func, py_file):
            try:
                if not Path(py_file).resolve().is_relative_to(package):
                    return None
            except (OSError, ValueError):
                return None
            return base.from_function.__func__(cls, py_func, py_file)

        def get_source_stamp(self):
            return kernel_stamp(nb_dir), base.get_source_stamp(self)

        return type(f"Kernel{base.__name__}", (base,),
                    {"from_function": classmethod(from_function), "get_source_stamp": get_source_stamp})

    caching.CacheImpl._locator_classes[:0] = [stamped(base) for base in bases]
    _installed.add(nb_dir)
    return True
