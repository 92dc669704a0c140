"""Kernel benchmarks (CUDA only): `python -m kernels.bench.attention`."""
