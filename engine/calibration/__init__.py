"""Calibration: how the model's simulated markets compare with observed ones.

* :mod:`engine.calibration.stylised`: stylised facts of returns (volatility, skewness and
  kurtosis, Hill tail indices, volatility clustering, drawdowns, 3-sigma hours) for simulated
  paths and real history, side by side (``cascade stylised``).
"""
