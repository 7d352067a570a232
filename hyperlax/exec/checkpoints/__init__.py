"""Checkpoints at run time: ``files`` (JAX-free: the record and data files that status reads)
and ``snapshots`` (saving and restoring a running batch's carries)."""
