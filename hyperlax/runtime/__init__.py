"""The JAX half of hyperlax: runs a frozen plan. Imports planfile and storage, never compiler/."""
