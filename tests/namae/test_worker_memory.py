"""The worker's memory job: labelled faces of a character the active model was never trained on are
embedded with that model and written as the version's memory rows (where the bot picks them up),
without a retrain; a second run finds nothing new."""

import shutil
from pathlib import Path

from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.jobs import JobKind, JobQueue, MemoryParams
from catalog.memory import face_counts
from catalog.schema import Character, JobStatus
from catalog.settings import Settings
from namae.worker import Worker
from sandbox.characters import generate_dataset
from scraper.folder import import_folder
from tests.fixtures.model import TinyModel

NEWCOMER_SEED = 4242
PICTURES = 8


def test_a_memory_job_embeds_a_new_characters_labelled_faces(
    tmp_path: Path, sqlite_engine: Engine, tiny_model: TinyModel, cascade_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_model.registry_root, data_dir / "models")  # the tiny model is active here
    settings = Settings(
        data_dir=data_dir,
        database_url=str(sqlite_engine.url),
        faces={"cascade_path": cascade_path},
        train={"min_images_per_class": 2},
        worker={"rescrape_schedule": "off", "retrain_schedule": "off", "retrain_check_schedule": "off"},
        _env_file=None,
    )
    folder = tmp_path / "newcomer"
    generate_dataset(folder, characters=1, images=PICTURES, seed=NEWCOMER_SEED)
    [name] = [p.name for p in folder.iterdir() if p.is_dir()]
    assert name not in tiny_model.labels
    imported = import_folder(settings, sqlite_engine, folder)
    assert imported.totals.new > 0
    assert face_counts(sqlite_engine, tiny_model.version) == {}  # nothing in the memory yet

    queue = JobQueue(sqlite_engine)
    first = queue.enqueue(JobKind.memory, MemoryParams(), requested_by="test")
    worker = Worker(settings, engine=sqlite_engine)
    assert worker.run_one()
    job = queue.get(first)
    assert job is not None and job.status == JobStatus.succeeded, job.error if job else None
    assert job.result["version"] == tiny_model.version and job.result["added"] > 0
    with session_scope(sqlite_engine) as session:
        [character_id] = session.scalars(select(Character.id)).all()  # the folder's character
    assert face_counts(sqlite_engine, tiny_model.version) == {character_id: job.result["added"]}

    again = queue.enqueue(JobKind.memory, MemoryParams(), requested_by="test")
    assert worker.run_one()
    job = queue.get(again)
    assert job is not None and job.status == JobStatus.succeeded and job.result["added"] == 0
