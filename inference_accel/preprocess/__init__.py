"""Preprocessing: reference PIL chain, fused CPU fast path, Triton kernel."""
