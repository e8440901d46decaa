"""InputError's one line, and fixes in the caller's words (command line or Python)."""

from __future__ import annotations

from genoformer.engine.errors import (
    InputError,
    cli_option,
    command_line,
    option,
    running_command,
    setting,
)


def test_message_is_one_line():
    error = InputError("bad\n  thing", file="a.tsv", where="line 3", fix="fix\nit")
    assert error.message == "a.tsv line 3: bad thing (fix: fix it)"


def test_option_in_python_and_on_the_command_line():
    assert not command_line()
    assert option("label_pattern") == "label_pattern="
    assert option("length_mode", "pad") == "length_mode='pad'"
    assert option("overwrite", True) == "overwrite=True"
    assert setting("label_pattern") == "label_pattern" and cli_option("length") is None
    with running_command(lambda: {"--label-pattern", "--overwrite", "--length-mode"}):
        assert command_line()
        assert option("label_pattern") == "--label-pattern"
        assert option("length_mode", "pad") == "--length-mode pad"
        assert option("overwrite", True) == "--overwrite"
        assert option("sequence_column") is None  # the command has no such option
        assert setting("sequence_column") == "sequence_column"
        assert cli_option("length_mode") == "--length-mode"
    assert not command_line()
