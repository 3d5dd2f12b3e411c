"""Alembic environment: runs against the engine handed in by `catalog.db`, or NAMAE's settings."""

from alembic import context

from catalog.schema import Base

config = context.config


def _engine():
    engine = config.attributes.get("engine")
    if engine is None:
        from catalog.db import make_engine
        from catalog.settings import Settings

        engine = make_engine(Settings().resolved_database_url)
    return engine


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
