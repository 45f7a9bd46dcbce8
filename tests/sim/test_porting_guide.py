"""Every SkyMesh example in docs/sim.md's porting guide runs (each ```python block, from the repository root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "sim.md").read_text(), flags=re.DOTALL)


def test_the_guide_has_its_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_porting_guide_example_runs(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code = compile(BLOCKS[index], f"docs/sim.md[python block {index}]", "exec")
    exec(code, {"__name__": f"porting_guide_{index}"})
