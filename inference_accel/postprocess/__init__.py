"""Postprocessing: dense reference, sparse CPU, Triton crop-RLE."""
