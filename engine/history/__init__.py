"""Real history: price data, the model replayed on observed prices, and backtests of the hedging rules."""
