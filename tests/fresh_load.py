"""Load a run directory the way a user's own script would: ``mmdd.load`` in a new Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from torch.utils.data import DataLoader
    import mmdd

    data = mmdd.load(sys.argv[1])
    seen, shapes, dtypes = 0, None, None
    for batch in DataLoader(data, batch_size=4):
        seen += batch[0].shape[0]
        shapes = [list(t.shape[1:]) for t in batch]
        dtypes = [str(t.dtype) for t in batch]
    print(json.dumps({"type": type(data).__name__, "len": len(data), "seen": seen, "item_shapes": shapes,
                      "dtypes": dtypes}))
""")


def load_in_fresh_process(run_dir: Path) -> dict:
    """``mmdd.load(run_dir)`` in a new interpreter, iterated by a plain DataLoader; a summary of what came out."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(run_dir)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
