"""Models: RF-DETR-Seg sizes, ONNX export, and loading model files/packages."""
