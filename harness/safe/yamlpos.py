"""Where a value sits in a YAML file: the 1-based line of the node at a key path."""

from __future__ import annotations

import yaml


def yaml_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The line of the node at `loc` (mapping keys and sequence indices), as far down as it
    exists; None when there is no document."""
    node, line = root, None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
            if node is None:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            node = node.value[key] if key < len(node.value) else None
        else:
            break
    if node is not None:
        line = node.start_mark.line + 1
    return line


def yaml_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def where(root: yaml.Node | None, loc: tuple[int | str, ...]) -> str:
    """ "line 12 (rubric.good[0].min)", or the path alone when the line is unknown."""
    line = yaml_line(root, loc)
    path = yaml_path(loc)
    if line is None:
        return path
    return f"line {line} ({path})" if path else f"line {line}"
