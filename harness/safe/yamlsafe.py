"""YAML read defensively: a bounded node tree, duplicate keys refused, typed scalars checked.

`yaml.safe_load` never runs code, but it will still compose a document nested thousands deep
(RecursionError), let a few aliases stand for billions of values ("billion laughs": harmless to
PyYAML, which shares the objects, but every walk over the result expands them), keep the last of
two equal keys without a word, and crash with a bare ValueError on `!!int x`. `load` turns each
of these into a `yaml.MarkedYAMLError` that names the line, so callers report them like any other
broken YAML.

`StrictLoader` keeps PyYAML's YAML 1.1 scalars (what lm-eval reads task files with);
`Core12Loader` reads plain scalars as YAML 1.2's core schema does, as suite.yaml is read: only
true/false are booleans (`version: yes` stays the text "yes"), and `1:20` is not the number 80.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 64  # nesting of collections, aliases expanded
MAX_VALUES = 200_000  # scalars and collections, aliases expanded


class LimitError(yaml.MarkedYAMLError):
    """The document is too deep or too large once its aliases are expanded."""


# libyaml's parser where PyYAML was built with it: ten times faster on a large file, and it
# stops at 1000 levels of nesting by itself.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


if TYPE_CHECKING:
    _Mixin = yaml.SafeLoader
else:
    _Mixin = object


class Strict(_Mixin):
    """The checks, mixed into a loader in front of whichever parser it brings."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # Without libyaml, the composer recurses once per level: stop before Python's limit.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise LimitError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            # `<<: *base` merges keys that the mapping's own keys may override: not duplicates
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConstructorError(
                    None, None, f"duplicate key '{key}' (first on line {seen[key]})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = line
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            # `!!int x`, `!!bool maybe`, a 5000-digit integer: a located error, not a crash
            shown = node.value if isinstance(node, ScalarNode) else "..."
            raise ConstructorError(
                None, None, f"{node.tag.rsplit(':', 1)[-1]} {str(shown)[:40]!r}: {_reason(e)}",
                node.start_mark,
            ) from None  # fmt: skip


class StrictLoader(Strict, _Base):  # type: ignore[valid-type,misc]
    pass


def _reason(e: Exception) -> str:
    return "not a value of this type" if isinstance(e, KeyError) else str(e)


class Core12Loader(StrictLoader):
    """Plain scalars as YAML 1.2's core schema reads them."""


Core12Loader.yaml_implicit_resolvers = {}
for _tag, _rx, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ("merge", r"^<<$", "<"),  # not YAML 1.2, but what people write to share settings
):  # fmt: skip
    Core12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_rx), list(_first))


def _core_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


Core12Loader.add_constructor("tag:yaml.org,2002:int", _core_int)


def load(text: str, loader: type[Strict] = Core12Loader) -> tuple[Node | None, Any]:
    """The document's node tree (to locate keys) and its value, both from one parse."""
    reader = loader(text)
    try:
        root = reader.get_single_node()
        if root is None:
            return None, None
        check_size(root)
        return root, reader.construct_document(root)
    finally:
        reader.dispose()


def check_size(root: Node) -> None:
    """Refuse a tree that aliases make deeper than MAX_DEPTH or larger than MAX_VALUES (or that
    contains itself), counting a shared node once for every place it appears."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels) from it down
    open_: set[int] = set()

    def fail(what: str, node: Node) -> LimitError:
        return LimitError(None, None, f"aliases expand this to {what}", node.start_mark)

    def measure(node: Node, level: int) -> tuple[int, int]:
        if id(node) in open_:
            raise LimitError(None, None, "an alias refers to its own anchor", node.start_mark)
        values, levels = measured.get(id(node), (1, 0))
        if level + levels > MAX_DEPTH:
            raise fail(f"more than {MAX_DEPTH} levels of nesting", node)
        if id(node) in measured or isinstance(node, ScalarNode):
            return values, levels
        open_.add(id(node))
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        for child in children:
            n, d = measure(child, level + 1)
            values, levels = values + n, max(levels, d + 1)
            if values > MAX_VALUES:
                raise fail(f"more than {MAX_VALUES} values", child)
        open_.discard(id(node))
        measured[id(node)] = (values, levels)
        return values, levels

    measure(root, 0)
