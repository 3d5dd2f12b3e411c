"""What the trainer and the bot agree on: the preprocessing spec, the ONNX `Classifier`
(onnxruntime) and the model registry (versions, promotion, rollback). Never imports torch."""
