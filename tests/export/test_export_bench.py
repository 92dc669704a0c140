"""The export benchmark runs end to end on a small dataset and reports its figures."""

from __future__ import annotations

from amplify.export.bench import bench_export


def test_bench_export_small(tmp_path):
    r = bench_export(frames=200, repeats=1, folder=tmp_path)
    assert r["frames"] == 200
    for key in (
        "read_s",
        "copy_s",
        "export_s",
        "decode_s",
        "cold_read_s",
        "cold_export_s",
        "copy_export_s",
    ):
        assert r[key] > 0
    assert r["export_over_read"] > 0 and r["export_frames_per_s"] > 0
    assert r["cold_export_over_read"] > 0
    assert r["target_over_read"] == 1.2
