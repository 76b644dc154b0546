"""The book and its hedges valued on paths: strategy outcomes, their metrics, the book's greeks, exchange margin rules."""
