"""skymesh.astro stays a pure library: importing all of it pulls in no wire, database or heavy astronomy code."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("grpc", "google.protobuf", "sqlalchemy", "skyfield", "astropy")


def test_astro_imports_no_forbidden_packages() -> None:
    code = (
        "import sys\n"
        "import skymesh.astro, skymesh.astro.tle, skymesh.astro.tle_gen, skymesh.astro.frames\n"
        "import skymesh.astro.propagate, skymesh.astro.passes, skymesh.astro.celestial, skymesh.astro.doppler\n"
        "import skymesh.astro.inertial, skymesh.astro.sun\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} or m in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
