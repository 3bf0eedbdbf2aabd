# SPDX-License-Identifier: MIT
"""The notebook-style example runs to its end with its own asserts."""
import os
import subprocess
import sys

import kheap

EXAMPLES = os.environ.get("KHEAP_EXAMPLES") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def test_dma_buffers_example():
    # The kheap this test imported, wherever it is installed.
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(kheap.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (here, env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable,
                          os.path.join(EXAMPLES, "dma_buffers.py")],
                         capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "output == input: True" in out.stdout
    assert out.stdout.rstrip().endswith("example: done")
