"""Successive halving at run time: ``decide`` (JAX-free: rung entries, ranking, the decision
files that status and report read too) and ``rungs`` (the rung loop that exec runs)."""
