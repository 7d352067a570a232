"""Files on disk, JAX-free, shared by exec, status and report: ``atomic`` (crash-safe writes),
``sweepdir`` (the sweep directory: ownership, plan copy, entry markers, verification) and
``claims`` (the lease protocol by which several workers share one sweep directory)."""
