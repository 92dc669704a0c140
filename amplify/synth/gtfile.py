"""Dense ground truth as a byte-deterministic `.npz`: a zip of `.npy` members with a fixed
timestamp and order (np.savez stamps the current time), readable with `np.load`."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_gt(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` (name -> array) to `path`, members sorted by name, deflate level 6."""
    path = Path(path)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=6)
    os.replace(tmp, path)


def read_gt(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a ground-truth file."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
