# syntax=docker/dockerfile:1
# Two targets from one file: `bot` (discord.py + onnxruntime, no torch) and `trainer` (torch, for
# the worker that scrapes and trains). Both run as a non-root user with the data directory as a volume.
FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NAMAE_DATA_DIR=/data
RUN groupadd --system --gid 10001 namae \
    && useradd --system --uid 10001 --gid namae --home-dir /app --shell /usr/sbin/nologin namae \
    && mkdir -p /data \
    && chown namae:namae /data
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY catalog ./catalog
COPY models ./models
COPY scraper ./scraper
COPY trainer ./trainer
COPY bot ./bot
COPY sandbox ./sandbox
COPY namae ./namae
VOLUME ["/data"]

FROM base AS bot
RUN pip install -c constraints.txt ".[bot]"
USER 10001:10001
ENTRYPOINT ["namae"]
CMD ["bot"]

FROM base AS trainer
RUN pip install -c constraints.txt ".[scraper,train]"
USER 10001:10001
ENTRYPOINT ["namae"]
CMD ["worker"]
