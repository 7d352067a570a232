"""JAX-free lowering of a resolved manifest into a Plan: sample -> group -> slice -> Plan."""

from hyperlax.compiler.lower import compile_manifest

__all__ = ["compile_manifest"]
