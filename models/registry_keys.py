"""Where a registry keeps things: the keys under its root in the object store, and its local
folders beside the versions (layout in `models.registry`'s docstring).
"""

from __future__ import annotations

from models.pointer import POINTER_KEY

STATE_NAME = POINTER_KEY
VERSIONS_DIR = "versions"
RESERVED_DIR = "reserved"
STAGING_DIR = ".staging"
TRASH_DIR = ".trash"


def reserved_key(number: int) -> str:
    return f"{RESERVED_DIR}/{number:06d}"
