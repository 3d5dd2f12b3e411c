"""Scoring a network on prepared pixels: the exact uint8 images `models.preprocess.prepare` makes,
normalized the way the exported graph normalizes them, so that trainer, exporter and bot agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from torch import nn

from trainer.augment import batch_to_input
from trainer.backbones import features_and_embedding
from trainer.dataset import Item, prepared_batches


@torch.no_grad()
def predict_logits(
    net: nn.Module,
    items: list[Item],
    loader: Callable[[Item], np.ndarray],
    *,
    device: torch.device,
    batch_size: int = 64,
    channels_last: bool = False,
) -> np.ndarray:
    """(N, C) float32 logits, in the order of `items`."""
    was_training = net.training
    net.eval()
    outputs: list[np.ndarray] = []
    try:
        for batch in prepared_batches(items, loader, batch_size):
            inputs = batch_to_input(batch).to(device)
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            outputs.append(net(inputs).float().cpu().numpy())
    finally:
        net.train(was_training)
    if not outputs:
        return np.zeros((0, _classes(net)), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32)


def _classes(net: nn.Module) -> int:
    """The head's number of classes, for empty predictions (0 when the head does not say)."""
    head = getattr(net, "head", None)
    return head.out_features if isinstance(head, nn.Linear) else 0


def predict_outputs(
    net: nn.Module,
    images: list[np.ndarray],
    *,
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) logits and (N, D) L2-normalized embeddings of prepared images, from one forward pass
    per batch, as the exported graph computes both (`trainer.export.ExportWrapper`)."""
    was_training = net.training
    net.eval()
    logits: list[np.ndarray] = []
    embeddings: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = np.stack(images[start : start + batch_size])
                features, embedding = features_and_embedding(net, batch_to_input(batch).to(device))
                logits.append(net.head(features).float().cpu().numpy())
                embeddings.append(embedding.float().cpu().numpy())
    finally:
        net.train(was_training)
    if not embeddings:
        return np.zeros((0, _classes(net)), dtype=np.float32), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(logits).astype(np.float32), np.concatenate(embeddings).astype(np.float32)


def predict_embeddings(
    net: nn.Module,
    images: list[np.ndarray],
    *,
    device: torch.device,
    batch_size: int = 64,
) -> np.ndarray:
    """(N, D) L2-normalized embeddings of prepared images, as the exported graph computes them."""
    return predict_outputs(net, images, device=device, batch_size=batch_size)[1]


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    if len(y_true) == 0:
        return 0.0
    return float(f1_score(y_true, y_pred, labels=list(range(num_classes)), average="macro", zero_division=0))


def cross_entropy(logits: np.ndarray, y_true: np.ndarray) -> float:
    if len(y_true) == 0:
        return float("nan")
    return float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y_true).long()))


def classification_table(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support with macro and weighted averages, plus accuracy
    and the confusion matrix (rows: true class, columns: predicted)."""
    indices = list(range(len(labels)))
    report = classification_report(
        y_true, y_pred, labels=indices, target_names=labels, output_dict=True, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(report[name]["precision"]),
            "recall": float(report[name]["recall"]),
            "f1": float(report[name]["f1-score"]),
            "support": int(report[name]["support"]),
        }
        for name in labels
    }
    averages = {
        key: {
            "precision": float(report[key]["precision"]),
            "recall": float(report[key]["recall"]),
            "f1": float(report[key]["f1-score"]),
            "support": int(report[key]["support"]),
        }
        for key in ("macro avg", "weighted avg")
    }
    return {
        "per_class": per_class,
        "macro": averages["macro avg"],
        "weighted": averages["weighted avg"],
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "support": len(y_true),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=indices).tolist(),
    }
