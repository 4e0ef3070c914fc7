#!/usr/bin/env python3
"""Random-corruption check of the workspace reader through the CLI.

    scripts/corrupt_workspace.py WORKSPACE.h5 N build/app/sparselab-cli [SEED]

Writes N copies of WORKSPACE.h5, each with 1, 2 or 4 random bytes changed, runs
`sparselab-cli workspace COPY` on each, and counts exit codes. Anything but 0 or 2 (a signal, an
internal error, a timeout) is a failure: its copy is kept in a temporary folder and listed.
Used for docs/hardening.md ("Sealed workspaces"): before the seal, 10 of 300 corruptions of a
demo workspace crashed the CLI inside libhdf5.
"""
import collections
import os
import random
import subprocess
import sys
import tempfile


def main() -> int:
    source, count, cli = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    data = open(source, "rb").read()
    folder = tempfile.mkdtemp(prefix="corrupt-workspace-")
    outcomes = collections.Counter()
    failures = []
    for i in range(count):
        corrupted = bytearray(data)
        for _ in range(rng.choice([1, 1, 2, 4])):
            at = rng.randrange(len(corrupted))
            corrupted[at] = rng.randrange(256)
        path = os.path.join(folder, f"w{i}.h5")
        with open(path, "wb") as f:
            f.write(corrupted)
        try:
            rc = subprocess.run([cli, "workspace", path], capture_output=True, timeout=60).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        outcomes[rc] += 1
        if rc in (0, 2):
            os.remove(path)
        else:
            failures.append((path, rc))
    print("exit codes:", dict(outcomes))
    for path, rc in failures:
        print("failure:", rc, path)
    print(f"{len(failures)} of {count} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
