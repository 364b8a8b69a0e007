#!/usr/bin/env python3
"""Fixture agent: no banner, no ready cue, no reply glyph, just a bare `❯ ` prompt.

A raw-mode TUI that echoes what it is typed itself, takes bracketed paste (a line
break inside a paste is text; CR outside one submits) and answers each submitted
text after THINK_MS (env, default 50): the rest of the line after the last `REPLY:` (up to a `|`),
with the two characters `\\n` as line breaks, or nothing when there is no `REPLY:`.
A submitted `/exit` quits. It ignores its arguments, so it can be installed under any
CLI's name. With TRUST_DIALOG=1 (env) it first asks whether to trust the folder and
waits for Enter (any other key quits, like a refused dialog); with LOGIN_DIALOG=1 it
shows a login method picker and never gets past it.
"""
import os
import select
import sys
import termios
import time
import tty

PROMPT = "\u276f "


def reply_for(text):
    if "REPLY:" not in text:
        return None
    return text.rsplit("REPLY:", 1)[1].split("\n")[0].split("|")[0].strip().replace("\\n", "\n")


def main():
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    out = sys.stdout.buffer
    think = int(os.environ.get("THINK_MS", "50")) / 1000

    def w(s):
        out.write(s.encode())
        out.flush()

    if os.environ.get("LOGIN_DIALOG") == "1":
        w("Select login method:\r\n\u276f 1. Claude account\r\n  2. API key\r\n")
        while True:
            if not os.read(fd, 16):
                return
    if os.environ.get("TRUST_DIALOG") == "1":
        w("Do you trust the files in this folder?\r\n\u276f 1. Yes, proceed\r\n  2. No, exit\r\n")
        key = os.read(fd, 16)
        if not key.startswith(b"\r"):
            return
        w("\x1b[2J\x1b[H")
    w("\x1b[?2004h" + PROMPT)
    buf, pending, paste = "", b"", False
    try:
        while True:
            select.select([fd], [], [])
            data = os.read(fd, 4096)
            if not data:
                return
            pending += data
            while pending:
                if pending.startswith(b"\x1b[200~"):
                    paste, pending = True, pending[6:]
                    continue
                if pending.startswith(b"\x1b[201~"):
                    paste, pending = False, pending[6:]
                    continue
                if pending[:1] == b"\x1b":
                    if len(pending) < 6:
                        break  # maybe a paste marker split between reads
                    pending = pending[1:]  # other escapes: ignored
                    continue
                ch = pending[:4].decode("utf-8", "ignore")[:1] or "?"
                pending = pending[max(1, len(ch.encode())):]
                if ch in "\r\n" and paste:
                    buf += "\n"
                    w("\r\n  ")
                elif ch == "\r":
                    text = buf
                    buf = ""
                    w("\r\n")
                    if text.strip() == "/exit":
                        return
                    if text.strip():
                        time.sleep(think)
                        reply = reply_for(text)
                        if reply:
                            w(reply.replace("\n", "\r\n") + "\r\n")
                    w(PROMPT)
                elif ch == "\x7f":
                    if buf:
                        buf = buf[:-1]
                        w("\b \b")
                elif ch >= " ":
                    buf += ch
                    w(ch)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    main()
