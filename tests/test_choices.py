"""The choice inputs: one Literal each, the same words as action.yml documents."""

from __future__ import annotations

import re
from typing import get_args

import pytest

from portpy_action.choices import CHOICES, ExternalLibs, Format
from portpy_action.options import action_inputs


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_action_yml_documents_exactly_the_literal_words(name: str) -> None:
    documented = action_inputs()[name]
    quoted = set(re.findall(r"`([^`\s]+)`", documented.description))
    # Every word is named in the description, and the default is one of them.
    assert set(CHOICES[name]) <= quoted, documented.description
    assert documented.default in CHOICES[name]


def test_word_lists_come_from_the_types() -> None:
    assert CHOICES["format"] == get_args(Format) == ("tar.gz", "tar.zst", "tar.xz", "zip")
    assert CHOICES["external-libs"] == get_args(ExternalLibs) == ("error", "warn", "vendor")


def test_one_home_for_the_pbs_build_prefix() -> None:
    from portpy_action.bundle import buildpath
    from portpy_action.runtime import sysconfig

    assert buildpath.BUILD_PREFIX is sysconfig.BUILD_PREFIX == "/install"
