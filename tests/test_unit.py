"""test_unit.py - runs every C unit test executable of the build (tests/unit/)
as one pytest case each, so one runner reports all the suite's results."""
import glob
import os
import subprocess

import pytest

BUILD = os.environ.get("EXCHANGEFS_BUILD") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build")
UNIT = sorted(p for p in glob.glob(os.path.join(BUILD, "tests", "unit", "test_*"))
              if os.access(p, os.X_OK) and os.path.isfile(p))


@pytest.mark.skipif(not UNIT, reason="no unit tests built in " + BUILD)
@pytest.mark.parametrize("exe", UNIT, ids=[os.path.basename(p) for p in UNIT])
def test_unit(exe, tmp_path):
    r = subprocess.run([exe], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert r.returncode == 0, "%s failed:\n%s%s" % (os.path.basename(exe), r.stdout[-4000:],
                                                    r.stderr[-4000:])
