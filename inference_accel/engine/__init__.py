"""Inference engines: onnxruntime (CPU or CUDA provider) and TensorRT."""
