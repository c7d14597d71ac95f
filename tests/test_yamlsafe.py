"""The bounded YAML loader: alias bombs, cycles and deep nesting are refused as YAML errors."""

from __future__ import annotations

import pytest
import yaml

from papercoder import yamlsafe
from tests.faults.cases import yaml_alias_bomb


def test_ordinary_yaml_loads_as_safe_load_does() -> None:
    text = ("base: &b {lr: 0.05, sizes: [1, 2]}\nrun:\n  <<: *b\n  steps: 3\n"
            "again: *b\nname: x\n")
    assert yamlsafe.load(text) == yaml.safe_load(text)
    assert yamlsafe.load("") is None


@pytest.mark.parametrize("text, why", [
    (yaml_alias_bomb(10), "expands to more than"),
    ("a: &x [*x]\n", "cycle"),
    ("a: &x {b: {c: *x}}\n", "cycle"),
    ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)), "levels deep"),
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", "brackets nest"),
    ("a: " + "[" * 900_000 + "\n", "brackets nest"),
])
def test_hostile_yaml_is_refused_as_a_yaml_error(text: str, why: str) -> None:
    with pytest.raises(yaml.YAMLError, match=why):
        yamlsafe.load(text)


def test_the_expansion_bound_counts_aliases_not_text() -> None:
    # 3 levels of 10 aliases: 1,111 values from 3 lines; refused under a bound of 1,000.
    text = yaml_alias_bomb(3)
    assert len(yamlsafe.load(text)["l2"]) == 10
    with pytest.raises(yamlsafe.YamlRefused):
        yamlsafe.load(text, max_nodes=1000)
