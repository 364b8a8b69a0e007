#!/usr/bin/env bash
# Opt-in check of agent-relay against the REAL claude, codex, gemini, opencode and aider
# CLIs, offline: each talks to the local mock model (mockllm.py here), which answers from
# `REPLY:` in the prompt. One-shot (oneshot.yaml) and in PTYs with a message relayed into
# each live session (interactive.yaml). Not part of the default test suite (the CLIs are
# about 1.6 GB).
#
#   CLI_BIN=/work/realclis/node_modules/.bin AIDER=/work/realclis/venv/bin/aider \
#   RELAY=target/debug/agent-relay  bash crates/relay-testkit/real-clis/check.sh
#
# Install the CLIs with:
#   npm install --prefix DIR --no-fund --no-audit @anthropic-ai/claude-code @openai/codex \
#       @google/gemini-cli opencode-ai
#   python3 -m venv VENV && VENV/bin/pip install aider-chat
# Versions passed are printed first; KEEP=1 keeps the scratch directory (run records,
# PTY transcripts) for a look afterwards.
set -euo pipefail
RELAY=$(cd "$(dirname "${RELAY:-target/debug/agent-relay}")" && pwd)/$(basename "${RELAY:-target/debug/agent-relay}")
source "$(dirname "$0")/env.sh"
export RELAY_REAL_TAG="relay-real-$$"

echo "claude $(claude --version | awk '{print $1}'), codex $(codex --version | awk '{print $2}'), gemini $(gemini --version), opencode $(opencode --version), aider $(aider --version | awk '{print $2}')"
cp "$here"/oneshot.yaml "$here"/interactive.yaml "$W/"
cd "$W"
git init -q .
status=0
for wf in oneshot.yaml interactive.yaml; do
  echo "== $wf"
  if "$RELAY" run "$wf" --json > "$root/$wf.json" 2> "$root/$wf.err"; then :; else status=1; fi
  python3 - "$root/$wf.json" <<'PY' || { echo "  FAILED:"; sed 's/^/  /' "$root/$wf.err"; }
import json, sys
s = json.load(open(sys.argv[1]))
for st in s["steps"]:
    out = " ".join(st.get("output", "").split())
    print(f"  {st['name']:9} {st['status']:10} output={out[:70]!r}")
PY
done
# Nothing the runs started may be left.
sleep 3
left=$(python3 - <<'PY'
import os
tag = "RELAY_REAL_TAG=" + os.environ["RELAY_REAL_TAG"]
me = os.getpid()
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        continue
    if int(pid) != me and state != "Z" and tag.encode() in env:
        found.append(pid)
print(len(found))
PY
)
echo "processes left behind: $left"
[ "$left" -eq 0 ] || status=1
[ "$status" -eq 0 ] && echo "PASSED" || echo "FAILED"
exit $status
