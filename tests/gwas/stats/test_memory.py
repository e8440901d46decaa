"""Association streams the .bed in chunks: on a .bed larger than a memory cap, the growth of
the process's resident memory stays under the cap (the whole matrix as float32 would be 16
times the .bed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

N_SAMPLES, N_VARIANTS = 20_000, 30_000  # a 143 MB .bed
CAP_MB = 120

CHILD = """
import sys
from pathlib import Path
import numpy as np
from genoformer.gwas.stats.association import associate

def rss_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])

prefix = sys.argv[1]
y = np.random.default_rng(0).normal(size=int(sys.argv[2]))
associate(prefix, y, variants=np.arange(8), test="linear")  # imports, first use
start = rss_kb("VmRSS:")
table = associate(prefix, y, test="linear")
assert len(table) == int(sys.argv[3])
print((rss_kb("VmHWM:") - start) / 1024)
"""


def write_random_bed(prefix) -> None:
    rng = np.random.default_rng(1)
    bytes_per_variant = (N_SAMPLES + 3) // 4
    # Every 2-bit code is a valid genotype (01 is missing), so random bytes are a valid .bed.
    body = rng.integers(0, 256, size=N_VARIANTS * bytes_per_variant, dtype=np.uint8)
    with open(f"{prefix}.bed", "wb") as bed:
        bed.write(bytes([0x6C, 0x1B, 0x01]))
        bed.write(body.tobytes())
    ids = np.arange(N_VARIANTS)
    pd.DataFrame(
        {"chrom": 1, "id": [f"v{i}" for i in ids], "cm": 0, "pos": ids + 1, "a1": "A", "a2": "G"}
    ).to_csv(f"{prefix}.bim", sep="\t", header=False, index=False)
    samples = [f"s{i}" for i in range(N_SAMPLES)]
    pd.DataFrame({"fid": samples, "iid": samples, "f": 0, "m": 0, "sex": 1, "p": -9}).to_csv(
        f"{prefix}.fam", sep=" ", header=False, index=False
    )


def test_association_memory_stays_under_cap_on_a_larger_bed(tmp_path):
    prefix = tmp_path / "big"
    write_random_bed(prefix)
    bed_mb = (tmp_path / "big.bed").stat().st_size / 2**20
    assert bed_mb > CAP_MB
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(prefix), str(N_SAMPLES), str(N_VARIANTS)],
        capture_output=True,
        text=True,
        check=True,
    )
    growth_mb = float(result.stdout.strip().splitlines()[-1])
    print(f".bed {bed_mb:.0f} MB, resident memory growth {growth_mb:.1f} MB (cap {CAP_MB} MB)")
    assert growth_mb < CAP_MB
