"""Export: ONNX, FP16, calibrated INT8 and TensorRT engines, each checked against PyTorch."""
