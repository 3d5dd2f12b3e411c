"""Reddit to catalog: sources, URL resolution, safe downloading, validation, dedup, face crops."""
