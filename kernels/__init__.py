"""Triton kernels (installed as inference_accel.kernels)."""
