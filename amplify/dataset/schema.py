"""The dataset schema, declared once: tables `frames`, `clips` and `errors`, their Arrow types, the
Hugging Face feature metadata that makes `image` load as an image, and deterministic ids.

Readers check `SCHEMA_VERSION` (schema metadata key `amplify`); bump it on any change of columns.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pyarrow as pa

SCHEMA_VERSION = 3  # 2: boxes.is_generated, clips.scenario_params; 3: clips.spec + quality metrics
# Older versions this code still reads: each only lacks nullable columns, read as null.
READABLE_VERSIONS = (2, 3)
TABLES = ("frames", "clips", "errors")
# Namespace of every id: uuid5(NAMESPACE, ...) is stable across machines and runs.
NAMESPACE = uuid.UUID("6f1c1d7e-2d3b-5a8e-9c40-61a3e2b7a0d1")

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
BOX = pa.struct(
    [
        ("track_id", pa.int32()),
        ("category", pa.string()),
        ("x0", pa.float32()),
        ("y0", pa.float32()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("is_generated", pa.bool_()),  # placed by a scenario edit (not in the source clip)
    ]
)

FRAMES = pa.schema(
    [
        ("frame_id", pa.string()),
        ("clip_id", pa.string()),
        ("source_id", pa.string()),
        ("split", pa.string()),
        ("variation", pa.string()),  # "source" for ingested frames; e.g. "rain_night" for generated
        ("frame_index", pa.int32()),  # index within the clip (window)
        ("timestamp_s", pa.float64()),  # seconds from the source clip's first frame
        ("image", IMAGE),  # encoded PNG/JPEG: Hugging Face Image
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("boxes", pa.list_(BOX)),  # empty list when the clip has no labels or the frame no agents
        ("weather", pa.string()),  # null when unknown (real source footage)
        ("time_of_day", pa.string()),
        ("intensity", pa.float32()),
    ]
)

CLIPS = pa.schema(
    [
        ("clip_id", pa.string()),
        ("source_id", pa.string()),
        ("source_path", pa.string()),
        ("source_sha256", pa.string()),
        ("split", pa.string()),
        ("window_index", pa.int32()),
        ("shot_index", pa.int32()),
        ("start_s", pa.float64()),
        ("num_frames", pa.int32()),
        ("fps", pa.float32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("variation", pa.string()),
        ("weather", pa.string()),
        ("time_of_day", pa.string()),
        ("intensity", pa.float32()),
        ("scenario", pa.string()),  # scenario template (amplify.scenarios), null for none
        ("scenario_params", pa.string()),  # JSON: the template's full parameter set and edit
        ("seed", pa.int64()),
        ("generator", pa.string()),  # "source" for ingested clips, else the model name
        ("checkpoint_sha256", pa.string()),  # null for "source"
        # JSON: the full variation spec (condition, intensity, seed, origin list|grid|sample|
        # scenario, scenario parameters); null for "source". What a rerun would ask for again.
        ("spec", pa.string()),
        # Quality against the source window (amplify.eval.metrics, on a subsample of frames;
        # null for "source"): a training job filters on these.
        ("blur_ssim", pa.float32()),  # SSIM after a sigma-4 blur: structure kept (1 = same)
        ("edge_f1", pa.float32()),  # Canny-like edges matched within 2 px
        ("sharpness", pa.float32()),  # Laplacian variance / the source's (1 = as sharp)
        ("cls_score", pa.float32()),  # condition classifier: P(weather) x P(time of day)
        ("parent_clip_id", pa.string()),  # lineage: the clip a variation was made from
        ("has_labels", pa.bool_()),
        ("num_boxes", pa.int32()),
        ("source_meta", pa.string()),  # JSON: container, codec, original size, fps, rotation
        ("ingest", pa.string()),  # ingest fingerprint (fps, size, resize, window, stride)
        # No job id here: the manifest says which job committed a file, and the same clip
        # ingested by two jobs gives the same bytes.
    ]
)

ERRORS = pa.schema(
    [
        ("error_id", pa.string()),
        ("source_path", pa.string()),
        ("source_sha256", pa.string()),  # null when the file could not be read
        ("stage", pa.string()),  # probe, hash, decode, labels, ...
        ("error_type", pa.string()),  # the exception class, e.g. CorruptVideoError
        ("message", pa.string()),
        ("job_id", pa.string()),
    ]
)

SCHEMAS = {"frames": FRAMES, "clips": CLIPS, "errors": ERRORS}
SPLITS = ("train", "validation", "test")


def _hf_features(table: str) -> dict:
    # Only the columns Hugging Face cannot infer from Arrow are declared; `datasets` infers the rest
    # (checked: datasets 5 merges metadata features by column name).
    if table == "frames":
        return {"image": {"_type": "Image"}, "split": {"dtype": "string", "_type": "Value"}}
    return {}


def schema_for(table: str) -> pa.Schema:
    """The Arrow schema of `table` with its `amplify` and `huggingface` metadata attached."""
    meta = {
        b"amplify": json.dumps({"schema_version": SCHEMA_VERSION, "table": table}).encode(),
        b"huggingface": json.dumps({"info": {"features": _hf_features(table)}}).encode(),
    }
    return SCHEMAS[table].with_metadata(meta)


def source_id(sha256: str) -> str:
    """The id of a source clip: its content, not its name (two names, one clip)."""
    return str(uuid.uuid5(NAMESPACE, f"source/{sha256}"))


def clip_id(
    source: str, ingest: str, window_index: int, variation: str = "source", seed: int = 0
) -> str:
    """uuid5 of (source, windowing, window, variation, seed): a rerun finds the same id."""
    return str(uuid.uuid5(NAMESPACE, f"clip/{source}/{ingest}/{window_index}/{variation}/{seed}"))


def frame_id(clip: str, frame_index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"frame/{clip}/{frame_index}"))


def error_id(path: str, stage: str, sha256: str | None) -> str:
    return str(uuid.uuid5(NAMESPACE, f"error/{path}/{stage}/{sha256}"))


def stable_rank(seed: int, key: str) -> int:
    """A 64-bit hash of (seed, key): the same on every machine and every run."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:8], "big")


def split_of(key: str, validation: float, test: float = 0.0, seed: int = 0) -> str:
    """Split by source clip (`key`: its source id, or a group of sources): every window and
    variation of a source lands in the same split. test if u < test, validation if
    u < test + validation, else train, for u = stable_rank(seed, key) / 2**64 in [0, 1): a pure
    function of the key, so a source keeps its split as the dataset grows, and raising a fraction
    only moves sources out of train. The job's dataset and `amplify export` (by default) call it
    with the same fractions and seed, so a source has one split in both."""
    u = stable_rank(seed, key) / 2**64
    if u < test:
        return "test"
    if u < test + validation:
        return "validation"
    return "train"
