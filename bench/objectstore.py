"""The S3 client: obstore (through catalog.s3_objects.S3Objects, the product's path) beside minio-py,
against a real S3 server (Ceph RGW, started here as the tests start it; NAMAE_TEST_S3_URL for
another), and boto3 too when it is importable (it is not a project dependency: botocore pins
python-dateutil < 3, which the project's constraints do not allow).

    .venv/bin/python -m bench.objectstore [--quick] [--repeats 40]

Per object size (a 16 KiB face crop, a 256 KiB picture, an 8 MiB model): PUT and GET latency,
each client timed round-robin with the others. Then GET throughput with 8 threads (what the
trainer's first epoch and a bot fetching a model do), the import time of each client in a fresh
interpreter (what every `namae` process pays at start) and the installed size of each client with
its dependencies. Ratios are minio's time over obstore's (above 1: obstore is faster).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from bench.harness import emit, interleave, parser, ratio, summary
from catalog.s3_objects import S3Objects
from catalog.settings_sections import StoreSettings
from tests.s3_server import S3Endpoint, make_bucket, s3_server

SIZES = {"16KiB": 16 << 10, "256KiB": 256 << 10, "8MiB": 8 << 20}
THREADS = 8
FOOTPRINT = {
    "obstore": ["obstore"],
    "minio": ["minio", "urllib3", "certifi", "argon2-cffi", "argon2-cffi-bindings", "cffi", "pycparser",
              "pycryptodome"],
    "boto3": ["boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"],
}  # fmt: skip


class Client:
    """put(key, data) and get(key) -> bytes through one library."""

    def __init__(self, name: str, put: Callable[[str, bytes], Any], get: Callable[[str], bytes]) -> None:
        self.name, self.put, self.get = name, put, get


def obstore_client(endpoint: S3Endpoint, bucket: str) -> Client:
    settings = StoreSettings(
        url=f"s3://{bucket}",
        endpoint=endpoint.endpoint,
        region=endpoint.region,
        access_key_id=endpoint.access_key,
        secret_access_key=endpoint.secret_key,
    )
    objects = S3Objects.connect(settings, "bench-obstore")
    return Client("obstore", objects.put, objects.get)


def minio_client(endpoint: S3Endpoint, bucket: str) -> Client:
    from minio import Minio

    parts = urlsplit(endpoint.endpoint)
    client = Minio(
        parts.netloc, access_key=endpoint.access_key, secret_key=endpoint.secret_key,
        region=endpoint.region, secure=parts.scheme == "https",
    )  # fmt: skip

    def put(key: str, data: bytes) -> None:
        client.put_object(bucket, f"bench-minio/{key}", BytesIO(data), len(data))

    def get(key: str) -> bytes:
        response = client.get_object(bucket, f"bench-minio/{key}")
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    return Client("minio", put, get)


def boto3_client(endpoint: S3Endpoint, bucket: str) -> Client | None:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        return None
    client = boto3.client(
        "s3", endpoint_url=endpoint.endpoint, aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key, region_name=endpoint.region,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=THREADS * 2),
    )  # fmt: skip

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"bench-boto3/{key}", Body=data)

    def get(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=f"bench-boto3/{key}")["Body"].read()

    return Client("boto3", put, get)


def import_ms(module: str, repeats: int) -> float | None:
    """Median time to import `module` in a fresh interpreter, minus the interpreter's own start."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return (time.perf_counter() - started) * 1000

    try:
        bare = statistics.median(run("pass") for _ in range(repeats))
        loaded = statistics.median(run(f"import {module}") for _ in range(repeats))
    except subprocess.CalledProcessError:
        return None
    return round(max(0.0, loaded - bare), 1)  # below the noise of starting Python: 0


def installed_mib(distributions: list[str]) -> float | None:
    total = 0
    for name in distributions:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            return None
        total += sum(file.size or 0 for file in files)
    return round(total / 2**20, 1)


def throughput(client: Client, keys: list[str]) -> float:
    """Objects per second fetched by THREADS threads."""
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(client.get, keys))
    return len(keys) / (time.perf_counter() - started)


def measure(endpoint: S3Endpoint, repeats: int, parallel_objects: int, seed: int) -> dict[str, Any]:
    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    make_bucket(endpoint, bucket)
    clients = [obstore_client(endpoint, bucket), minio_client(endpoint, bucket)]
    optional = boto3_client(endpoint, bucket)
    if optional is not None:
        clients.append(optional)
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {"latency": {}, "throughput_objects_per_s": {}}
    for label, size in SIZES.items():
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        count = repeats if size < (1 << 20) else max(3, repeats // 4)
        for client in clients:
            client.put(f"{label}/probe", data)
            assert client.get(f"{label}/probe") == data, f"{client.name} returned other bytes"
        puts = interleave(
            {c.name: (lambda c=c, k=f"{label}/put", d=data: c.put(k, d)) for c in clients}, count
        )
        gets = interleave({c.name: (lambda c=c, k=f"{label}/probe": c.get(k)) for c in clients}, count)
        results["latency"][label] = {
            "put": {name: summary(values) for name, values in puts.items()},
            "get": {name: summary(values) for name, values in gets.items()},
        }
    small = rng.integers(0, 256, 64 << 10, dtype=np.uint8).tobytes()
    keys = [f"parallel/{i}" for i in range(parallel_objects)]
    rates: dict[str, list[float]] = {client.name: [] for client in clients}
    for client in clients:
        for key in keys:
            client.put(key, small)
    for _ in range(3):  # round-robin, as everywhere else
        for client in clients:
            rates[client.name].append(throughput(client, keys))
    results["throughput_objects_per_s"] = {
        name: round(statistics.median(values), 1) for name, values in rates.items()
    }
    results["clients"] = [client.name for client in clients]
    return results


def main() -> None:
    args = parser(__doc__).parse_args()
    started = time.perf_counter()
    repeats = 5 if args.quick else 40
    parallel_objects = 32 if args.quick else 400
    with s3_server() as endpoint:
        results = measure(endpoint, repeats, parallel_objects, args.seed)
    imports = {"obstore": "obstore", "minio": "minio", "boto3": "boto3"}
    results["import_ms"] = {
        name: import_ms(module, 3 if args.quick else 7)
        for name, module in imports.items()
        if name in results["clients"]
    }
    results["installed_mib"] = {name: installed_mib(FOOTPRINT[name]) for name in results["clients"]}
    latency = results["latency"]
    ratios = {
        f"{op}_{label}_minio_over_obstore": ratio(
            latency[label][op]["minio"]["median_ms"], latency[label][op]["obstore"]["median_ms"]
        )
        for label in SIZES
        for op in ("put", "get")
    }
    ratios["throughput_obstore_over_minio"] = ratio(
        results["throughput_objects_per_s"]["obstore"], results["throughput_objects_per_s"]["minio"]
    )
    emit(
        "objectstore",
        {
            "baseline": "minio-py 7.2 (urllib3), the same calls; boto3 beside them when importable",
            "candidate": "obstore 0.12 (Rust object_store) through catalog.s3_objects.S3Objects",
            "server": os.environ.get("NAMAE_TEST_S3_URL", "").split("@")[-1]
            or "Ceph RGW (radosgw 16, memstore OSD) on 127.0.0.1",
            "results": results,
            "ratios": ratios,
            "targets": [],
        },
        args,
        started,
    )


if __name__ == "__main__":
    main()
