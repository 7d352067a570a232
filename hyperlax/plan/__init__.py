"""The frozen plan: its file format, its integrity check, reading it, and its explanation.

    format.py    the Plan structs, encoding, decoding and ids (JAX-free, msgspec)
    check.py     everything a plan must satisfy before anything runs it
    read.py      a plan file from disk: bounded read, decoded, id verified, checked
    explain.py   ``show``: a plan in words, its samples as a table, two plans' differences
"""
