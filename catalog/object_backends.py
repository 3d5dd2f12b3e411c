"""Which backend holds a part of namae's objects: a folder in the data directory, or a prefix in the
bucket `store.url` names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalog.folder_objects import FolderObjects
from catalog.s3_objects import S3Objects

if TYPE_CHECKING:
    from catalog.settings import Settings


def open_objects(settings: Settings, scope: str) -> FolderObjects | S3Objects:
    """The objects of one part of namae (`images`, `models`, `trainer`): a folder in the data
    directory, or a prefix in the bucket `store.url` names."""
    if settings.store.url:
        return S3Objects.connect(settings.store, scope)
    return FolderObjects(settings.data_dir / scope)
