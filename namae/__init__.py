"""The front door: the `namae` CLI, the worker (scheduler + job runner) and the offline demo."""
