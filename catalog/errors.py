"""Errors that carry a sentence meant for a person: the CLI prints them on one line and exits 1."""


class CatalogError(Exception):
    """Something the user can fix: bad input, an unreachable database, an unwritable folder."""
