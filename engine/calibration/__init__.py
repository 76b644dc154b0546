"""Calibration: how the model's simulated markets compare with observed ones, and fitting them.

* :mod:`engine.calibration.stylised`: stylised facts of returns (volatility, skewness and
  kurtosis, Hill tail indices, volatility clustering, drawdowns, 3-sigma hours) for simulated
  paths and real history, side by side (``cascade stylised``).
* :mod:`engine.calibration.targets`: the February 2026 targets (facts file and real hourly
  closes), read off simulated paths or off the book replayed along the real path.
* :mod:`engine.calibration.fit`: the fitted parameters, the objective and the optimiser
  (Sobol design, then Nelder-Mead, on common random numbers); the parameter file.
* :mod:`engine.calibration.identify`: which parameters and combinations the targets pin down
  (the objective's curvature at the fit).
* :mod:`engine.calibration.oos`: the episodes of ``scenarios/history/`` against their reference
  numbers: October 2025 (fitted jointly, its intra-hour wick) and March 2020 (out of sample).
* :mod:`engine.calibration.run` and :mod:`engine.calibration.report`: ``cascade calibrate`` end
  to end, and its HTML report and tables.
"""
