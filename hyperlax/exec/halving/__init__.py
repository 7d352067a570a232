"""Staged training at run time: successive halving's rungs and PBT's intervals.

The two share one machinery (stages, carries, decisions written once): ``decide`` (JAX-free:
stage entries, ranking, the decision files that status and report read too), ``pbt``
(JAX-free: PBT's exploit and explore between intervals) and ``rungs`` (the stage loop that exec
runs)."""
