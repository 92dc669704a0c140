"""The front camera: pinhole intrinsics, its per-pixel rays and the ego pose matrices.

Camera frame is OpenCV's (x right, y down, z forward). The "level" frame L is the camera frame
with the pitch removed (y is world-vertical, down); rays are stored there so that the ground and
upright boxes are simple to intersect. A ray `r` has camera-z 1, so a hit at `t * r` has depth t.
"""

from __future__ import annotations

import math

import numpy as np

HFOV_DEG = 70.0


def intrinsics(width: int, height: int) -> np.ndarray:
    """3x3 pinhole matrix: square pixels, principal point at the image centre."""
    f = 0.5 * width / math.tan(math.radians(HFOV_DEG) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def pitch_matrix(pitch: float) -> np.ndarray:
    """Camera -> level frame: a camera tilted down by `pitch` radians."""
    c, s = math.cos(pitch), math.sin(pitch)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def yaw_matrix(yaw: float) -> np.ndarray:
    """Level frame -> world: heading `yaw` from +z toward +x, about the (down) y axis."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def level_rays(k: np.ndarray, width: int, height: int, pitch: float) -> np.ndarray:
    """Ray through each pixel centre, in the level frame, camera-z = 1.  # (H, W, 3) float64"""
    u = (np.arange(width) + 0.5 - k[0, 2]) / k[0, 0]
    v = (np.arange(height) + 0.5 - k[1, 2]) / k[1, 1]
    cam = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)
    return apply(pitch_matrix(pitch), cam)  # (H, W, 3)


def camera_to_world(x: float, y: float, z: float, yaw: float, pitch: float) -> np.ndarray:
    """4x4 pose of the camera in the world frame (x right, y down, z forward)."""
    m = np.eye(4)
    m[:3, :3] = apply(yaw_matrix(yaw), pitch_matrix(pitch).T).T
    m[:3, 3] = (x, y, z)
    return m


def apply(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """`m @ v` for every 3-vector of `v` (..., 3), summed in a fixed order.

    Not `@`: numpy hands aligned arrays to BLAS (with FMA) and unaligned ones to its own loop, so
    the last bits of a product, and with them the output bytes, could change from run to run.
    """
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    rows = [float(m[i, 0]) * x + float(m[i, 1]) * y + float(m[i, 2]) * z for i in range(3)]
    return np.stack(rows, axis=-1)


def dot(v: np.ndarray, w) -> np.ndarray:
    """Dot product over the last axis (3) in a fixed order (see `apply`)."""
    return v[..., 0] * w[..., 0] + v[..., 1] * w[..., 1] + v[..., 2] * w[..., 2]
