"""``hyperlax report``: read a sweep's entry outputs back into one results table, the top
configurations and the ``[fixed]`` block that pins the best, and plot them.

``results`` is JAX-free and matplotlib-free (numpy and json only); ``plots`` imports matplotlib
inside its functions; ``commands`` holds the click commands ``report``, ``sweep-hp-samples`` and
``generate-hp-samples``.
"""
