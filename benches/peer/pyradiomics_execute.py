"""PyRadiomics 3.1.0 timed as its users run it, for `cargo bench --bench radiomics -- --vs-pyradiomics VENV`.

Usage: VENV/bin/python pyradiomics_execute.py REPS IMAGE MASK [IMAGE MASK ...]

For each pair: one warm-up call, then REPS timed calls of
`RadiomicsFeatureExtractor().execute(image_path, mask_path)` with default settings (file reading included, as a
user's script does it). Prints one JSON line per pair: {"image", "cpu_s" (min over the reps of this process's CPU
time, time.process_time), "wall_s" (the same call's wall time), "features" (how many non-diagnostic values)}.
The caller sets the thread counts (OMP_NUM_THREADS=1 and friends) in the environment: single-threaded CPU time.
"""
import json
import logging
import sys
import time

import radiomics
from radiomics import featureextractor


def main() -> None:
    reps = int(sys.argv[1])
    paths = sys.argv[2:]
    if reps < 1 or len(paths) == 0 or len(paths) % 2:
        sys.exit(__doc__)
    radiomics.setVerbosity(logging.ERROR)
    for image, mask in zip(paths[0::2], paths[1::2]):
        extractor = featureextractor.RadiomicsFeatureExtractor()
        result = extractor.execute(image, mask)  # warm-up
        best = (float("inf"), float("inf"))
        for _ in range(reps):
            c0, w0 = time.process_time(), time.perf_counter()
            result = extractor.execute(image, mask)
            c1, w1 = time.process_time(), time.perf_counter()
            best = min(best, (c1 - c0, w1 - w0))
        features = sum(1 for k in result if not k.startswith("diagnostics_"))
        print(json.dumps({"image": image, "cpu_s": best[0], "wall_s": best[1], "features": features}), flush=True)


if __name__ == "__main__":
    main()
