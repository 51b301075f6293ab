"""Market mapping: which Polymarket and Kalshi contracts pay out in exactly the same states.

A pair is Verified only when two independent extractions of both contracts' resolution criteria agree,
a judge agrees, and every deterministic check passes; anything uncertain is Unverified with reasons.
"""
