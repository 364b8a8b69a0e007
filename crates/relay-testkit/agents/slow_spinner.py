#!/usr/bin/env python3
"""Fixture agent: slow, with spinners, a codex-like prompt and `/exit` in colour.

At start it draws `Booting MCP server: files` with a spinner for BOOT_MS (env, default
400), then its prompt `› ` with a status row under it (no ready cue any CLI uses). It
takes bracketed paste, echoes what it is typed, and after a submit redraws
`<frame> Working (Ns)` in place for SPIN_MS (default 2000) before it answers: the rest
of the line after the last `REPLY:` (`\\n` as line breaks, up to a `|`), each line behind `◆ `,
except a line `/exit`, drawn bare in bold magenta. No `REPLY:`, no answer. A submitted
`/exit` quits. It ignores its arguments.
"""
import os
import select
import sys
import termios
import time
import tty

FRAMES = "\u280b\u2819\u2839\u2838\u283c\u2834\u2826\u2827\u2807\u280f"
PROMPT = "\u203a "


def main():
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    out = sys.stdout.buffer
    boot = int(os.environ.get("BOOT_MS", "400")) / 1000
    spin = int(os.environ.get("SPIN_MS", "2000")) / 1000

    def w(s):
        out.write(s.encode())
        out.flush()

    def spinner(label, seconds):
        t0 = time.time()
        i = 0
        while time.time() - t0 < seconds:
            w("\r\x1b[2K%s %s (%ds)" % (FRAMES[i % len(FRAMES)], label, time.time() - t0))
            i += 1
            time.sleep(0.08)
        w("\r\x1b[2K")

    def prompt():
        # The prompt, a status row below it, the cursor back after the prompt.
        w(PROMPT + "\r\n\x1b[2m  ~/project \u00b7 model: fixture\x1b[0m\x1b[1A\r\x1b[2C")

    w("\x1b[?2004h")
    spinner("Booting MCP server: files", boot)
    prompt()
    buf, pending, paste = "", b"", False
    try:
        while True:
            select.select([fd], [], [])
            data = os.read(fd, 4096)
            if not data:
                return
            pending += data
            text = None
            while pending:
                for marker, state in ((b"\x1b[200~", True), (b"\x1b[201~", False)):
                    if pending.startswith(marker):
                        paste, pending = state, pending[len(marker):]
                        break
                else:
                    if pending[:1] == b"\x1b":
                        if len(pending) < 6:
                            break
                        pending = pending[1:]
                        continue
                    try:
                        ch = pending[:4].decode("utf-8", "ignore")[:1] or "?"
                    except Exception:
                        ch = "?"
                    pending = pending[max(1, len(ch.encode())):]
                    if ch in "\r\n" and paste:
                        buf += "\n"
                        w("\r\n  ")
                    elif ch == "\r":
                        text, buf = buf, ""
                    elif ch >= " ":
                        buf += ch
                        w(ch)
                    continue
            if text is None:
                continue
            # Clear the status row, leave the echo, answer below.
            w("\r\n\x1b[2K")
            if text.strip() == "/exit":
                return
            if text.strip():
                spinner("Working", spin)
                if "REPLY:" in text:
                    reply = text.rsplit("REPLY:", 1)[1].split("\n")[0].split("|")[0].strip()
                    for line in reply.split("\\n"):
                        if line.strip() == "/exit":
                            w("\x1b[1;35m/exit\x1b[0m\r\n")
                        else:
                            w("\u25c6 " + line + "\r\n")
            prompt()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    main()
