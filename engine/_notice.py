"""Where a long first step may tell the user about itself, without importing what it is about.

``on_compile(message)`` is called once per process before numba compiles a kernel that its
on-disk cache does not hold for this machine (:func:`engine.nb.config.before_call`). The CLI
sets it to print a notice; a library caller may set it too. ``None``: silent. It lives here, not
in :mod:`engine.nb.config`, so that setting it does not import numba (``cascade validate`` and
``cascade show`` never do).
"""

from __future__ import annotations

from typing import Callable

on_compile: Callable[[str], None] | None = None
