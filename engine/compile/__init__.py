"""Scenario -> frozen arrays on the step timeline (the kernels' inputs). See :mod:`.layout` for the ABI."""
