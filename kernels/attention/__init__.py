"""Attention kernels: frame masks, a PyTorch reference, and Triton flash kernels.

The Triton module is not imported here: Triton reads `TRITON_INTERPRET` when it is imported, so
callers import `kernels.attention.triton_attention` themselves when they need it.
"""

from .mask import FrameMask
from .reference import attention_reference

__all__ = ["FrameMask", "attention_reference"]
