"""Measuring a training loop's epochs: GPU utilisation sampled while each loop trains, and epoch
time with the GPU's queued work inside the interval (`bench.train`)."""

from __future__ import annotations

import logging
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import torch

from bench.harness import nvidia_smi

log = logging.getLogger("bench.train")

GPU_POLL_S = 0.2


class GpuSampler:
    """GPU utilisation (%) polled in a thread, filed under whichever loop is training right now."""

    def __init__(self, device: torch.device) -> None:
        self.index = device.index if device.index is not None else torch.cuda.current_device()
        self.current: str | None = None
        self.samples: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-utilisation", daemon=True)
        self.source = self._pick_source()

    def _pick_source(self) -> str | None:
        try:
            torch.cuda.utilization(self.index)  # needs pynvml
            return "torch.cuda.utilization"
        except Exception as exc:  # noqa: BLE001 - no pynvml (ModuleNotFoundError) or any NVML error
            log.debug("torch.cuda.utilization is unavailable (%s); trying nvidia-smi", exc)
        # the index is torch's; under CUDA_VISIBLE_DEVICES nvidia-smi may number the GPUs otherwise
        return "nvidia-smi" if shutil.which("nvidia-smi") and self._smi() is not None else None

    def _smi(self) -> float | None:
        rows = nvidia_smi("utilization.gpu", timeout=5)
        try:
            return float(rows[min(self.index, len(rows) - 1)]) if rows else None
        except ValueError:
            return None

    def _read(self) -> float | None:
        if self.source == "torch.cuda.utilization":
            return float(torch.cuda.utilization(self.index))
        return self._smi()

    def _run(self) -> None:
        while not self._stop.wait(GPU_POLL_S):
            loop = self.current
            if loop is not None and (value := self._read()) is not None:
                self.samples.setdefault(loop, []).append(value)

    def __enter__(self) -> Self:
        if self.source is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self, loop: str) -> dict[str, Any]:
        values = self.samples.get(loop, [])
        if not values:
            return {"source": self.source, "samples": 0}
        return {
            "source": self.source,
            "samples": len(values),
            "median_percent": statistics.median(values),
            "mean_percent": round(statistics.fmean(values), 1),
        }


def timed_epoch(run: Callable[[], int], device: torch.device) -> tuple[int, float]:
    """(images trained on, seconds), with the GPU's queued work finished inside the interval."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    images = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images, time.perf_counter() - started
