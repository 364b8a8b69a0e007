#!/usr/bin/env python3
"""Fixture agent: line-oriented, like a simple REPL or aider outside a paste.

The terminal stays in its normal (cooked) mode: the terminal echoes what is typed and
every line break submits the line before it at once; there is no bracketed paste. Each
line is answered at once: the rest of the line after the last `REPLY:` (the two
characters `\\n` as line breaks, up to a `|`), or nothing. A line `/exit` quits. It ignores its
arguments, so it can be installed under any CLI's name.
"""
import sys


def main():
    out = sys.stdout
    while True:
        out.write("> ")
        out.flush()
        line = sys.stdin.readline()
        if not line:
            return
        text = line.strip()
        if text == "/exit":
            return
        if "REPLY:" in text:
            reply = text.rsplit("REPLY:", 1)[1].split("|")[0].strip()
            out.write(reply.replace("\\n", "\n") + "\n")


if __name__ == "__main__":
    main()
