"""Where the embedded default keeps its state."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.local.emulator import Home


@pytest.mark.parametrize("value", [None, ""])
def test_an_unset_or_empty_mlops_home_is_the_default_folder(
    value: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    if value is None:
        monkeypatch.delenv("MLOPS_HOME", raising=False)
    else:
        monkeypatch.setenv("MLOPS_HOME", value)
    assert Home.default().root == (tmp_path / ".mlops").resolve()


def test_mlops_home_names_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "elsewhere"))
    assert Home.default().root == (tmp_path / "elsewhere").resolve()
