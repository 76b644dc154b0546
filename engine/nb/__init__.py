"""Numba kernels only: numpy and numba in, arrays out. No pandas, pydantic, files or CLI here.

The arrays they read are laid out by :mod:`engine.compile.layout` (the ABI); settings live in
:mod:`engine.nb.config`.
"""
