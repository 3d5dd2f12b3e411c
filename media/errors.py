"""The error of `media/` that a person can fix (a missing or invalid face cascade, a failed download).

It carries a sentence meant for a person; the CLI prints it on one line and exits 1, like the
catalog's own errors."""


class MediaError(Exception):
    """Something the user can fix about the files `media/` needs: a path, a download, a checksum."""
