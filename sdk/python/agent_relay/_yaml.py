"""A small YAML writer for workflow configurations (standard library only).

Mappings and lists are written in block style; every string is double-quoted (JSON's
escapes are YAML's), except text of several lines, written as a literal block so tasks
stay readable. Keys are written plain when they are plain words.
"""

import json
import re

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# Characters a literal block cannot hold as they are.
_UNBLOCKABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u0085\u2028\u2029\ufeff]")


def _key(k):
    if not isinstance(k, str):
        raise TypeError(f"mapping keys must be strings, not {type(k).__name__}: {k!r}")
    return k if _PLAIN_KEY.match(k) and k not in ("true", "false", "null", "yes", "no", "on", "off", "y", "n", "~") else json.dumps(k, ensure_ascii=False)


def _blockable(s):
    if "\n" not in s or _UNBLOCKABLE.search(s) or "\r" in s:
        return False
    lines = s.split("\n")
    if lines[0].startswith((" ", "\t")) or lines[0] == "":
        return False
    # A line of only blanks would be read back as an empty one.
    return not any(l.strip(" \t") == "" and l != "" for l in lines)


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{v} cannot be written in a workflow")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(f"cannot write a {type(v).__name__} in a workflow: {v!r}")


def _block(s, indent):
    if not s.endswith("\n"):
        chomp, lines = "-", s.split("\n")
    elif s.endswith("\n\n"):
        chomp, lines = "+", s.split("\n")[:-1]
    else:
        chomp, lines = "", s[:-1].split("\n")
    pad = " " * indent
    return f"|{chomp}\n" + "\n".join(pad + l if l else "" for l in lines)


def _emit(v, indent, out):
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            return "{}"
        for k, x in v.items():
            out.append(_item(pad + _key(k) + ":", x, indent))
        return None
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        for x in v:
            out.append(_item(pad + "-", x, indent))
        return None
    return _scalar(v)


def _item(head, x, indent):
    if isinstance(x, str) and _blockable(x):
        return f"{head} {_block(x, indent + 2)}"
    if isinstance(x, (dict, list, tuple)) and x:
        sub = []
        _emit(x, indent + 2, sub)
        if head.endswith("-") and isinstance(x, dict):
            # `- key: value`: the mapping's first line shares the dash's.
            return head + " " + "\n".join(sub)[indent + 2 :]
        return head + "\n" + "\n".join(sub)
    return f"{head} {_emit(x, indent, [])}"


def dump(value):
    """`value` (a dict) as YAML text."""
    if not isinstance(value, dict):
        raise TypeError("a workflow configuration is a dict")
    out = []
    _emit(value, 0, out)
    return "\n".join(out) + "\n"
