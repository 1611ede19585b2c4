"""Acquisition throughput on the embedded demo: yt-dlp fetch plus ffmpeg cut, per worker count.

Writes a fresh demo MSP-Face (file:// URLs, so no network) to a temporary folder, then
times ``liser.acquire.acquire`` on it from scratch with 1 and 2 workers and prints and
saves (benchmarks/results/acquisition.json): videos per second, segments per second, and
segment audio obtained per second of wall time (x real time).

    python benchmarks/acquisition.py [--videos 10]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from liser.corpora.mspface import read_lists
from liser.demo.mspface import write_mspface_demo
from liser.files import write_json
from liser.unlabeled.acquire import AcquireOptions, acquire

LOCAL_FILES = AcquireOptions(retries=0, allow_local_files=True)  # the demo's videos are local files

RESULTS = Path(__file__).parent / "results" / "acquisition.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10)
    args = parser.parse_args()
    figures: dict = {"machine": f"{os.cpu_count()} cores"}
    with tempfile.TemporaryDirectory() as folder:
        lists_folder = Path(folder) / "MSP-Face"
        write_mspface_demo(lists_folder, seed=0, n_speakers=6, n_videos=args.videos, failures=False)
        lists = read_lists(lists_folder)
        seconds_listed = float(lists.segments["duration"].sum())
        figures.update(videos=len(lists.videos), segments=len(lists.segments), segment_audio_s=seconds_listed)
        for workers in (1, 2):
            out = Path(folder) / f"acquired-{workers}"
            start = time.perf_counter()
            report = acquire(lists.segments, lists.videos, out, workers=workers, options=LOCAL_FILES)
            wall = time.perf_counter() - start
            assert report["segments_ok"] == len(lists.segments), report["failures"]
            figures[f"workers_{workers}"] = {
                "wall_s": wall,
                "videos_per_s": len(lists.videos) / wall,
                "segments_per_s": len(lists.segments) / wall,
                "x_realtime": seconds_listed / wall,
            }
            start = time.perf_counter()
            acquire(lists.segments, lists.videos, out, workers=workers, options=LOCAL_FILES)
            figures[f"workers_{workers}"]["rerun_nothing_to_do_s"] = time.perf_counter() - start
    for key, value in figures.items():
        print(f"{key:12s} {value}")
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
