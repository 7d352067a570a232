"""The JAX half of hyperlax: executes a frozen plan. Imports planfile and store, never compiler/."""
