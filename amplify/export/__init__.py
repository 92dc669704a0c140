"""`amplify export`: a frozen, filtered, split copy of a dataset for training jobs (Parquet for
Hugging Face / Ray / polars / DuckDB, WebDataset mp4 shards for video models, COCO JSON), committed
with a manifest and a dataset card. Loaders over it: `amplify.data`. Guide: docs/EXPORT.md."""

from amplify.export.config import ExportConfig, FilterConfig, ShardConfig, SplitConfig
from amplify.export.job import read_export_manifest, run_export

__all__ = [
    "ExportConfig",
    "FilterConfig",
    "ShardConfig",
    "SplitConfig",
    "read_export_manifest",
    "run_export",
]
