"""Catalog to a calibrated, checked ONNX model: dataset, splits, torch training, reports, export."""
