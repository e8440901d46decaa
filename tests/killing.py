"""What the kill-and-resume tests of the three training commands share: start the command in a
process of its own, stop it (SIGTERM or SIGKILL) once it has written a checkpoint chosen at
random (seeded), and check what a stopped run must look like.

The process is stopped right after the chosen checkpoint's ``trainer_state.json`` appears
(the Trainer writes it last), plus a seeded random delay of a few steps, so that the kill
lands between checkpoints or inside the saving of the next one, and the resumed run has
steps to do again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genoformer.cli import main

#: Seconds to wait for a checkpoint (the subprocess imports torch first: slow on a busy machine).
CHECKPOINT_TIMEOUT = 300
#: Text that the Hugging Face libraries print and a training command must not (issue 17).
HF_NOISE = ("mtime may not be reliable", "Writing model shards")


def cli(*words: object) -> list[str]:
    """The command line of ``genoformer WORDS...`` in a new Python process."""
    return [sys.executable, "-m", "genoformer.cli", *map(str, words)]


def options(mapping: dict[str, object]) -> list[str]:
    """``{"batch_size": 8}`` as ``["--batch-size", "8"]``."""
    words = []
    for key, value in mapping.items():
        words += [f"--{key.replace('_', '-')}", str(value)]
    return words


def kill_point(seed: int, *, every: int, last: int) -> tuple[int, float]:
    """A seeded random checkpoint after the first (at most ``last``) and a delay after it
    (up to 50 ms: on a quiet machine a small model runs a whole epoch in a fifth of a
    second, and the kill must land before the end of training)."""
    rng = np.random.default_rng(seed)
    step = int(rng.choice(np.arange(2 * every, last + 1, every)))
    return step, float(rng.uniform(0, 0.05))


def start_until_checkpoint(
    command: Sequence[str], out: Path, *, step: int, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, Path]:
    """``command`` started in a process of its own (stderr in ``<out>.stderr``), returned
    once it has written checkpoint ``step`` (or ended, or the timeout passed), with that
    checkpoint's ``trainer_state.json``."""
    with open(f"{out}.stderr", "w") as stderr:  # a file: a pipe left unread could fill up
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    marker = out / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json"
    deadline = time.monotonic() + CHECKPOINT_TIMEOUT
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return process, marker


def kill_after_checkpoint(
    command: Sequence[str],
    out: Path,
    *,
    step: int,
    delay: float,
    how: str,
    env: dict[str, str] | None = None,
) -> str:
    """Run ``command`` until checkpoint ``step``, wait ``delay`` seconds, send ``how``
    (``"SIGTERM"`` or ``"SIGKILL"``); check that it was stopped in training; return its
    stderr."""
    process, marker = start_until_checkpoint(command, out, step=step, env=env)
    # Whether the checkpoint was written, taken before the delay: in the delay a fast run can
    # write the next checkpoints, and the rotation of checkpoints may delete this one.
    reached = marker.exists()
    time.sleep(delay)
    process.send_signal(getattr(signal, how))
    process.wait(timeout=120)
    stderr = Path(f"{out}.stderr").read_text()
    assert reached, f"no checkpoint {step} (exit {process.returncode}):\n{stderr[-3000:]}"
    assert process.returncode != 0, "the run ended before it was stopped"
    assert not (out / "model").exists(), "the run finished training before it was stopped"
    return stderr


def check_stopped(out: Path, how: str, stderr: str) -> None:
    """What a stopped run looks like: SIGTERM, a manifest saying interrupted (and one line on
    stderr saying how to go on); SIGKILL, no chance to write anything, so a manifest still
    saying running. Either way it is not "complete", which every reader refuses."""
    manifest = json.loads((out / "manifest.json").read_text())
    if how == "SIGTERM":
        assert manifest["status"] == "interrupted" and manifest["reason"] == "SIGTERM"
        assert f"interrupted: {out} (SIGTERM)" in stderr and "--resume" in stderr
        assert "Traceback" not in stderr
    else:
        assert manifest["status"] == "running"
    for noise in HF_NOISE:
        assert noise not in stderr


def check_refused(words: Sequence[object], capsys: pytest.CaptureFixture) -> str:
    """``genoformer WORDS`` (in this process) refuses with exit code 2 and one line; the
    line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(w) for w in words])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "--overwrite" in lines[0] and "--resume" in lines[0], err
    return lines[0]


def resume(words: Sequence[object], capsys: pytest.CaptureFixture) -> str:
    """``genoformer WORDS --resume`` in this process, which must succeed; its stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, words), "--resume"])
    err = capsys.readouterr().err
    assert exit_info.value.code in (0, None), err
    for noise in HF_NOISE:
        assert noise not in err
    return err


def assert_same_weights(ours: Path, theirs: Path) -> None:
    """Bitwise the same tensors in two ``model.safetensors``: a resumed run restores the
    data order, the optimizer and every random state, so it computes the same floats."""
    a, b = load_file(ours / "model.safetensors"), load_file(theirs / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name}: {(a[name] - b[name]).abs().max()}"
