#!/usr/bin/env bash
# Records the session fixtures of the real CLIs (claude, codex, gemini, opencode, aider)
# against the local mock model: start-up, a task typed in and its reply, then a relayed
# message typed into the live session and its reply ending in `/exit`. The fixtures land in
# crates/relay-broker/tests/fixtures/real/<cli>-<version>.jsonl and are replayed by
# crates/relay-broker/tests/session_recorded.rs.
#
#   CLI_BIN=/work/realclis/node_modules/.bin AIDER=/work/realclis/venv/bin/aider \
#   PYTHON=/work/realclis/venv/bin/python bash crates/relay-testkit/real-clis/record.sh [CLI...]
#
# PYTHON must have pyte (`pip install pyte`).
set -euo pipefail
source "$(dirname "$0")/env.sh"
PYTHON=${PYTHON:-python3}
dest=$(cd "$here/../../relay-broker/tests/fixtures" && pwd)/real
mkdir -p "$dest"
cd "$W"
git init -q .

rec() {
  local cli=$1 version=$2 ready=$3 word=$4
  shift 4
  local out="$dest/$cli-$version.jsonl"
  echo "== $cli $version"
  "$PYTHON" "$here/record.py" --out "$out" --version "$version" --ready "$ready" \
    --task "Answer with the word. REPLY:${word}_TASK" --reply "${word}_TASK" \
    --message "Relay message from lead: REPLY:${word}_MSG\\n/exit" --message-reply "${word}_MSG" \
    -- "$@" > "$root/$cli.screen" 2> "$root/$cli.err" || { echo "  FAILED"; cat "$root/$cli.err"; }
  sed 's/^/  | /' "$root/$cli.screen" | grep -v '^  | *$' | tail -25
}

sel=("$@")
on() { local c=$1; [ ${#sel[@]} -eq 0 ] && return 0; for s in "${sel[@]}"; do [ "$s" = "$c" ] && return 0; done; return 1; }

if on claude; then
  v=$(claude --version | awk '{print $1}')
  rec claude "$v" 'bypass permissions on|\? for shortcuts' PONG claude --dangerously-skip-permissions
fi
if on codex; then
  v=$(codex --version | awk '{print $2}')
  rec codex "$v" '\? for shortcuts' PONG codex --dangerously-bypass-approvals-and-sandbox
fi
if on gemini; then
  v=$(gemini --version)
  rec gemini "$v" 'Type your message' PONG gemini --yolo
fi
if on opencode; then
  v=$(opencode --version)
  rec opencode "$v" 'ctrl\+p commands' PONG opencode
fi
if on aider; then
  v=$(aider --version | awk '{print $2}')
  rec aider "$v" '^>' PONG aider --yes-always --no-git
fi
