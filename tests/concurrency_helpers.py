"""Helpers shared by the tests of several workers on one sweep directory."""

from __future__ import annotations

import threading


def race(n: int, fn) -> list:
    """Run ``fn(0..n-1)`` in n threads released together by a barrier; each result, or the
    exception it raised."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[i] = exc
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
