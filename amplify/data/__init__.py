"""Loaders over an `amplify export` (docs/EXPORT.md): PyTorch datasets of frames and of clips
with collates for variable box counts, and a one-line Ray Data loader for Ray Train.

    from amplify.data import FrameDataset, ClipDataset, collate_frames, collate_clips, ray_dataset
"""

from amplify.data.clips import ClipDataset, collate_clips
from amplify.data.frames import FrameDataset, collate_frames, pad_boxes
from amplify.data.ray_loader import decode_batch, ray_dataset
from amplify.data.targets import categories, condition_label

__all__ = [
    "ClipDataset",
    "FrameDataset",
    "categories",
    "collate_clips",
    "collate_frames",
    "condition_label",
    "decode_batch",
    "pad_boxes",
    "ray_dataset",
]
