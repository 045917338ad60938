"""The JSON Schema of params.yaml, for editors (VS Code's YAML extension and others read the
`yaml-language-server` modeline at the top of params.yaml and of every preset): generated from
the pydantic models, with each key's description taken from the comment beside it in
params.yaml, so that the words are written once."""

from __future__ import annotations

import copy
import re

from transferlab.config import Params

KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_]\w*):(?P<rest>.*)$")
COMMENT_LINE = re.compile(r"^(?P<indent>\s*)#\s?(?P<text>.*)$")


def yaml_comments(text: str) -> dict[str, str]:
    """Dotted key -> its comment: the text after `#` on the key's line and the indented comment
    lines right below it (continuations). A comment line at column 0 belongs to no key."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last = None
    for line in text.splitlines():
        if m := KEY_LINE.match(line):
            indent = len(m["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m["key"]))
            last = ".".join(k for _, k in stack)
            found[last] = m["rest"].split("#", 1)[1].strip() if "#" in m["rest"] else ""
        elif (c := COMMENT_LINE.match(line)) and c["indent"] and last:
            found[last] = f"{found[last]} {c['text'].strip()}".strip()
        else:
            last = None
    return found


def _inline(node, defs: dict):
    """The schema with every $ref replaced by a copy of its definition (a description per key)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[1]])
            return _inline({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _describe(node: dict, comments: dict[str, str], prefix: str = "") -> None:
    for key, prop in node.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if comments.get(dotted):
            prop["description"] = comments[dotted]
        _describe(prop, comments, f"{dotted}.")


def params_schema(commented_params: str) -> dict:
    """The schema of params.yaml: the models' types, bounds and defaults, unknown keys refused,
    and the descriptions of `commented_params` (the default params.yaml's text)."""
    raw = Params.model_json_schema()
    schema = _inline({k: v for k, v in raw.items() if k != "$defs"}, raw.get("$defs", {}))
    _describe(schema, yaml_comments(commented_params))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "transferlab params.yaml",
        "description": "The experiment configuration of transferlab (written by `transferlab schema`).",
    }
