"""Files on disk, JAX-free: the one reader, the one writer, and the sweep directory.

    read.py      the bounded reader: regular files only, size-capped, decoded with located errors
    atomic.py    the one writer: temp file, fsync, rename, never outside the root
    paths.py     relative paths from plans and manifests checked to stay inside a root
    sweepdir.py  the sweep directory: ownership, plan copy, entry markers, verification
    claims.py    the lease protocol by which several workers share one sweep directory
    provenance.py  where an entry's results came from, read back, grouped and compared
"""
