"""JAX-free: the sweep manifest and its recipes.

    format.py          the manifest and recipe TOML formats (msgspec Structs)
    distributions.py   search-space distributions (tagged union) and their validation
    recipes.py         built-in recipes (hyperlax/recipes/*.toml) and their lookup
    listed.py          listed samples: values read from a CSV or JSON file
    resolve.py         a manifest against its recipe and the declarations -> one resolved sweep
    starter.py         ``hyperlax init``: a starter manifest for a recipe and environment
    toml_inline.py     TOML values and keys written inline (for init, report's [fixed] block)
"""
