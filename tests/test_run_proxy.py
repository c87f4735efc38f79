"""`run_proxy.py` argument handling: the `--set` options mitmproxy's config file overrides."""

from __future__ import annotations

import pytest

from run_proxy import config_file_overrides, set_options


def test_set_options_reads_both_spellings_and_keeps_the_last():
    args = ["--set", "a=1", "--set=b=x=y", "-s", "script.py", "--set", "a=2", "--set"]
    assert set_options(args) == {"a": "2", "b": "x=y"}


@pytest.mark.parametrize("file_name", ["config.yaml", "config.yml"])
def test_config_file_options_given_with_set_are_reported(tmp_path, file_name):
    (tmp_path / file_name).write_text("portcullis_region: eu-west-1\nlisten_port: 9000\n")
    args = ["--set", f"confdir={tmp_path}", "--set", "portcullis_region=us-east-1"]
    assert config_file_overrides(args) == [(tmp_path / file_name, "portcullis_region")]


@pytest.mark.parametrize("text", ["", "# nothing\n", "[not: valid", "- a list\n"])
def test_empty_broken_or_absent_config_files_report_nothing(tmp_path, text):
    (tmp_path / "config.yaml").write_text(text)
    args = ["--set", f"confdir={tmp_path}", "--set", "portcullis_region=us-east-1"]
    assert config_file_overrides(args) == []
    assert config_file_overrides(["--set", f"confdir={tmp_path / 'absent'}"]) == []
