"""2D boxes of visible agents, read off the instance map so that box and mask always agree."""

from __future__ import annotations

import numpy as np

# An agent is labelled in a frame when at least this many of its pixels are visible and its
# visible extent is at least MIN_SIDE_PX wide and tall.
MIN_PIXELS = 6
MIN_SIDE_PX = 2


def instance_boxes(instance: np.ndarray) -> list[dict[int, tuple[int, int, int, int]]]:
    """Per frame, track id -> (x0, y0, x1, y1) pixel extent of its mask (x1, y1 exclusive).

    instance: (T, H, W) int32, 0 = none.
    """
    T, H, W = instance.shape
    t, y, x = np.nonzero(instance)
    out: list[dict[int, tuple[int, int, int, int]]] = [{} for _ in range(T)]
    if t.size == 0:
        return out
    ids = instance[t, y, x].astype(np.int64)
    n_ids = int(ids.max()) + 1
    key = t * n_ids + ids  # one bin per (frame, track)
    size = T * n_ids
    count = np.bincount(key, minlength=size)
    x0 = np.full(size, W, np.int64)
    y0 = np.full(size, H, np.int64)
    x1 = np.full(size, -1, np.int64)
    y1 = np.full(size, -1, np.int64)
    np.minimum.at(x0, key, x)
    np.minimum.at(y0, key, y)
    np.maximum.at(x1, key, x)
    np.maximum.at(y1, key, y)
    for k in np.nonzero(count >= MIN_PIXELS)[0]:
        w, h = x1[k] - x0[k] + 1, y1[k] - y0[k] + 1
        if w >= MIN_SIDE_PX and h >= MIN_SIDE_PX:
            f, tid = divmod(int(k), n_ids)
            out[f][tid] = (int(x0[k]), int(y0[k]), int(x1[k]) + 1, int(y1[k]) + 1)
    return out
