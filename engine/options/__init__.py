"""Options: Black-Scholes-Merton pricing and greeks (:mod:`.black_scholes`) and the vol surface."""
