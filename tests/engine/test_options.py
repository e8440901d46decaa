"""Option groups: a verb's settings dataclass, with the settings a caller names replaced."""

from __future__ import annotations

import dataclasses

import pytest

from genoformer.engine.options import with_overrides


@dataclasses.dataclass(frozen=True)
class Settings:
    epochs: float = 3.0
    batch_size: int = 12


def test_defaults_settings_and_overrides() -> None:
    assert with_overrides(Settings, None, {}, "train") == Settings()
    given = Settings(epochs=1.0)
    assert with_overrides(Settings, given, {}, "train") == given
    assert with_overrides(Settings, given, {"batch_size": 4}, "train") == Settings(1.0, 4)
    assert given == Settings(epochs=1.0)  # the caller's settings are left as they are


def test_an_unknown_setting_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"train\(\) got an unexpected keyword argument 'epoch'"):
        with_overrides(Settings, None, {"epoch": 2}, "train")


def test_pretrain_refuses_an_unknown_setting(tmp_path) -> None:
    from genoformer.sc import pretrain

    with pytest.raises(TypeError, match="'max_step'.*max_steps"):
        pretrain(tmp_path, out=tmp_path / "run", max_step=20)
