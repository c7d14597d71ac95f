"""Loading YAML that someone else wrote (model answers, files in OUT, repositories) within
bounds.

``yaml.safe_load`` builds an alias as a reference to the node it names, so a "billion
laughs" document (aliases of aliases of aliases) loads in a moment into a small graph that
expands to billions of values: whatever walks it afterwards (a key count, a dump, a
comparison) never ends. An alias of its own anchor (``a: &x [*x]``) loads into a cycle that
recursive code walks until ``RecursionError``. :func:`load` checks the composed node graph
before anything is built from it: a cycle, more than ``max_nodes`` values once every alias is
expanded, nesting deeper than ``max_depth``, or text longer than ``max_chars`` raise
:class:`YamlRefused` (a ``yaml.YAMLError``, so callers' existing handlers catch it). Nesting
too deep for the parser itself is refused the same way, never a ``RecursionError``.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_CHARS = 2_000_000
"""The longest YAML text loaded."""
MAX_NODES = 200_000
"""The most values (scalars, sequences, mappings) a document may hold with aliases expanded."""
MAX_DEPTH = 200
"""The deepest nesting of sequences and mappings."""


class YamlRefused(yaml.YAMLError):
    """A YAML text that is not loaded because it is outside the bounds: the message says why."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_node(root: yaml.Node, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """Raise YamlRefused when the document at ``root`` refers to itself, expands past
    ``max_nodes`` values or nests deeper than ``max_depth``. Iterative: any graph is fine."""
    size: dict[int, int] = {}  # id(node) -> values in its expansion, once finished
    height: dict[int, int] = {}
    open_ids: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            total = 1 + sum(size[id(k)] for k in kids)
            if total > max_nodes:
                raise YamlRefused(f"it expands to more than {max_nodes:,} values (aliases of "
                                  "aliases); write the values out instead")
            deep = 1 + max((height[id(k)] for k in kids), default=0)
            if deep > max_depth:
                raise YamlRefused(f"it nests more than {max_depth} levels deep")
            size[key], height[key] = total, deep
            open_ids.discard(key)
            continue
        if key in size:
            continue
        if key in open_ids:
            raise YamlRefused("an alias refers to the anchor that contains it (a cycle)")
        open_ids.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in open_ids:
                raise YamlRefused("an alias refers to the anchor that contains it (a cycle)")
            if id(kid) not in size:
                stack.append((kid, False))


class _BoundedLoader(yaml.SafeLoader):
    max_nodes = MAX_NODES
    max_depth = MAX_DEPTH

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            check_node(node, self.max_nodes, self.max_depth)
        return node


def _bracket_depth(text: str | bytes) -> int:
    """An upper bound on the nesting of flow collections: [ and { not yet closed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    deepest = depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return deepest


def load(text: str | bytes, *, max_chars: int = MAX_CHARS, max_nodes: int = MAX_NODES,
         max_depth: int = MAX_DEPTH) -> Any:
    """``yaml.safe_load`` within bounds; YamlRefused (a yaml.YAMLError) when outside them."""
    if len(text) > max_chars:
        raise YamlRefused(f"it is {len(text):,} characters long, over the limit of "
                          f"{max_chars:,}")
    # PyYAML's scanner takes time quadratic in the nesting of [ and {: bound it before.
    if _bracket_depth(text) > max_depth:
        raise YamlRefused(f"its brackets nest more than {max_depth} levels deep")
    loader = _BoundedLoader(text)
    loader.max_nodes, loader.max_depth = max_nodes, max_depth
    try:
        return loader.get_single_data()
    except (RecursionError, MemoryError):
        raise YamlRefused("it is nested too deeply to read") from None
    finally:
        loader.dispose()
