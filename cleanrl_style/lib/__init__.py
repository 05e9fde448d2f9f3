"""Shared modules of the cleanrl_style scripts: one reason to change each (docs/foundation.md#layout)."""
