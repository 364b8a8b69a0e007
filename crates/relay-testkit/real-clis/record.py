#!/usr/bin/env python3
"""Records a real coding-agent CLI in a PTY as a session fixture.

  record.py --out FILE.jsonl --ready REGEX --task TEXT --reply REGEX
            [--message TEXT --message-reply REGEX] [--on REGEX=>KEYS] -- PROGRAM ARGS...

The fixture is JSON lines: a header {"rows", "cols", "argv", "version"}, then every
output chunk {"t": seconds, "out": base64} and every write {"t": seconds, "in": base64}
in the order they happened. The session: start-up (terminal queries answered: DA1, CPR,
OSC 10/11), the ready screen (REGEX on the rendered screen and a quiet second), the task
pasted in bracketed paste, a pause, Enter, the reply (REGEX, then quiet), optionally a
relayed message typed the same way and its reply, then the process group ended.

Replayed by crates/relay-broker/tests/session_recorded.rs. Needs pyte (a VT emulator).
"""
import argparse
import base64
import codecs
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time

import pyte

QUERIES = [
    (re.compile(rb"\x1b\[6n"), None),
    (re.compile(rb"\x1b\[0?c"), b"\x1b[?62;22c"),
    (re.compile(rb"\x1b\]10;\?(\x07|\x1b\\)"), b"\x1b]10;rgb:ffff/ffff/ffff\x1b\\"),
    (re.compile(rb"\x1b\]11;\?(\x07|\x1b\\)"), b"\x1b]11;rgb:0000/0000/0000\x1b\\"),
]


def unescape(s):
    return codecs.decode(s.encode("latin-1", "backslashreplace"), "unicode_escape")


class Session:
    def __init__(self, argv, rows, cols, out):
        self.t0 = time.time()
        self.rows, self.cols = rows, cols
        self.out = out
        self.raw = bytearray()
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.last_out = time.time()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvp(argv[0], argv)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.exited = False

    def log(self, key, data):
        rec = {"t": round(time.time() - self.t0, 4), key: base64.b64encode(data).decode()}
        self.out.write(json.dumps(rec) + "\n")

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.log("in", data)
        try:
            os.write(self.fd, data)
        except OSError:
            pass

    def pump(self, wait):
        end = time.time() + wait
        while True:
            left = end - time.time()
            if left <= 0 or self.exited:
                return
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if not data:
                self.exited = True
                return
            self.log("out", data)
            self.last_out = time.time()
            base = len(self.raw)
            self.raw += data
            try:
                self.stream.feed(data)
            except Exception:
                pass
            buf = bytes(self.raw[max(0, base - 16):])
            off = max(0, base - 16)
            found = []
            for rx, ans in QUERIES:
                for m in rx.finditer(buf):
                    if off + m.end() > base:
                        found.append((m.start(), ans))
            for _, ans in sorted(found, key=lambda x: x[0]):
                if ans is None:
                    ans = b"\x1b[%d;%dR" % (self.screen.cursor.y + 1, self.screen.cursor.x + 1)
                self.write(ans)

    def view(self):
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait(self, regex, timeout, quiet, handlers=()):
        rx = re.compile(regex, re.M)
        end = time.time() + timeout
        while time.time() < end and not self.exited:
            self.pump(0.1)
            view = self.view()
            for h in handlers:
                if not h[2] and h[0].search(view):
                    h[2] = True
                    self.pump(0.3)
                    self.write(h[1])
            if rx.search(view) and time.time() - self.last_out >= quiet:
                return True
        return False

    def type_line(self, text, pause):
        self.write(b"\x1b[200~" + text.encode() + b"\x1b[201~")
        self.pump(pause)
        self.write(b"\r")

    def end(self):
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            t = time.time() + 2
            while time.time() < t:
                self.pump(0.1)
                try:
                    p, _ = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    return
                if p == self.pid:
                    return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--version", default="")
    ap.add_argument("--ready", required=True)
    ap.add_argument("--on", action="append", default=[])
    ap.add_argument("--task", required=True)
    ap.add_argument("--reply", required=True)
    ap.add_argument("--message")
    ap.add_argument("--message-reply")
    ap.add_argument("--pause", type=float, default=0.3)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    handlers = []
    for spec in a.on:
        rx, _, keys = spec.partition("=>")
        handlers.append([re.compile(rx, re.M), unescape(keys), False])
    ok = True
    with open(a.out, "w") as out:
        out.write(json.dumps({"rows": a.rows, "cols": a.cols, "argv": cmd,
                              "version": a.version}) + "\n")
        s = Session(cmd, a.rows, a.cols, out)
        try:
            if not s.wait(a.ready, a.timeout, 1.0, handlers):
                print("not ready:\n" + s.view(), file=sys.stderr)
                ok = False
                return
            s.type_line(a.task, a.pause)
            if not s.wait(a.reply, a.timeout, 1.5):
                print("no reply:\n" + s.view(), file=sys.stderr)
                ok = False
                return
            if a.message:
                s.type_line(a.message, a.pause)
                if not s.wait(a.message_reply, a.timeout, 1.5):
                    print("no reply to the message:\n" + s.view(), file=sys.stderr)
                    ok = False
                    return
        finally:
            s.end()
            print(s.view())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
