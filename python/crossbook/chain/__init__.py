"""Polygon: the UMA dispute watcher (feeds the breaker) and the transaction manager (nonces, fees,
replacement, reorgs, confidence gauge). See docs/chain.md."""
