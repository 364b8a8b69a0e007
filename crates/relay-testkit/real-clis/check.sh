#!/usr/bin/env bash
# Opt-in check of agent-relay against the REAL claude, codex, gemini, opencode and aider
# CLIs, offline: each talks to the local mock model (mockllm.py here), which answers from
# `REPLY:` in the prompt. One-shot (oneshot.yaml) and in PTYs with a message relayed into
# each live session (interactive.yaml); token usage, a rate limit that parks a step and a
# token budget (limits.yaml); sessions continued across steps (sessions.yaml); the
# run's MCP tools called by the CLIs themselves (mcp.yaml), and questions for a person
# asked with `ask_human` and answered with `agent-relay answer` (ask.yaml). Not part of the default test suite (the CLIs are
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
# PTY transcripts) for a look afterwards. ONLY=mcp runs only the MCP scenario (mcp.yaml:
# the run's MCP tools called by the real claude, codex, gemini and opencode, and ask.yaml);
# ONLY=sessions only sessions.yaml; ONLY=nats the MCP tools on a NATS worker
# (nats-mcp.yaml; needs nats-server).
set -euo pipefail
RELAY=$(cd "$(dirname "${RELAY:-target/debug/agent-relay}")" && pwd)/$(basename "${RELAY:-target/debug/agent-relay}")
# The sessions scenario reads the bodies the mock was sent.
export MOCK_LOG_BODIES=1
source "$(dirname "$0")/env.sh"
export RELAY_REAL_TAG="relay-real-$$"

echo "claude $(claude --version | awk '{print $1}'), codex $(codex --version | awk '{print $2}'), gemini $(gemini --version), opencode $(opencode --version), aider $(aider --version | awk '{print $2}')"
cp "$here"/oneshot.yaml "$here"/interactive.yaml "$here"/mcp.yaml "$W/"
cd "$W"
git init -q .
status=0
case "${ONLY:-}" in
  mcp) scenarios="mcp.yaml" ;;
  sessions|nats) scenarios="" ;;
  *) scenarios="oneshot.yaml interactive.yaml mcp.yaml" ;;
esac
for wf in $scenarios; do
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
# Limits: tokens read from each CLI's structured output (the mock reports TOKENS:IN:OUT),
# a 429 with a reset time that parks a step (no retry spent), and the token budget that
# stops the last step. The run fails by design (the budget); its summary is checked.
[ -n "${ONLY:-}" ] || {
echo "== limits.yaml"
cp "$here"/limits.yaml "$W/"
"$RELAY" run limits.yaml --json > "$root/limits.json" 2> "$root/limits.err" || true
python3 - "$root/limits.json" "$W" <<'PY' || { status=1; echo "  FAILED:"; sed 's/^/  /' "$root/limits.err"; }
import glob, json, sys
s = json.load(open(sys.argv[1]))
steps = {st["name"]: st for st in s["steps"]}
ok = True
for name in ["claude-usage", "codex-usage", "gemini-usage", "opencode-usage"]:
    u = steps[name].get("usage") or {}
    good = u.get("input", 0) + u.get("cacheRead", 0) >= 1000 and u.get("output", 0) >= 100
    ok &= good
    print(f"  {name:15} {steps[name]['status']:10} tokens={u} {'ok' if good else 'MISSING'}")
events = [json.loads(l) for f in glob.glob(sys.argv[2] + "/.agent-relay/runs/*/events.jsonl") for l in open(f)]
parked = [e for e in events if e["type"] == "step:parked" and e["step"] == "parked"]
retried = [e for e in events if e["type"] == "step:retrying" and e["step"] == "parked"]
print(f"  parked          {steps['parked']['status']:10} parks={len(parked)} retries={len(retried)}"
      " (a CLI that outwaits the limit with its own retries completes without parking)")
ok &= steps["parked"]["status"] == "completed" and not retried
parked = [e for e in events if e["type"] == "step:parked" and e["step"] == "parked-pty"]
retried = [e for e in events if e["type"] == "step:retrying" and e["step"] == "parked-pty"]
print(f"  parked-pty      {steps['parked-pty']['status']:10} parks={len(parked)} retries={len(retried)}")
ok &= steps["parked-pty"]["status"] == "completed" and len(parked) >= 1 and not retried
reason = steps["over-budget"].get("reason") or ""
print(f"  over-budget     {steps['over-budget']['status']:10} {reason}")
ok &= "token budget exhausted" in reason
sys.exit(0 if ok else 1)
PY
}
# ask_human: every question the run lists is answered as a person would, and the answer
# must reach the model (the step's output one-shot; the mock's log in a PTY).
case "${ONLY:-}" in sessions|nats) ;; *)
echo "== ask.yaml"
cp "$here"/ask.yaml "$W/"
"$RELAY" run ask.yaml --json > "$root/ask.json" 2> "$root/ask.err" &
ask_pid=$!
answered=" "
for _ in $(seq 1 900); do
  kill -0 "$ask_pid" 2>/dev/null || break
  for step in $("$RELAY" questions --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(q["step"] for q in json.load(sys.stdin)))' 2>/dev/null); do
    case "$answered" in *" $step "*) continue ;; esac
    word=$(echo "${step#ask-}" | tr a-z A-Z)
    "$RELAY" answer last "$step" "ANSWER_$word" > /dev/null 2>&1 && answered="$answered$step "
  done
  sleep 0.2
done
wait "$ask_pid" || status=1
python3 - "$root/ask.json" "$root/mock.jsonl" <<'PY' || { status=1; echo "  FAILED:"; sed 's/^/  /' "$root/ask.err"; }
import json, sys
s = json.load(open(sys.argv[1]))
log = [json.dumps(json.loads(l).get("body", "")) for l in open(sys.argv[2])]
ok = True
for st in s["steps"]:
    word = st["name"][len("ask-"):].upper()
    back = any("ANSWER_" + word in b for b in log)
    good = st["status"] == "completed" and back
    ok &= good
    out = " ".join(st.get("output", "").split())
    print(f"  {st['name']:14} {st['status']:10} answer-to-model={'yes' if back else 'NO'} output={out[:50]!r}")
sys.exit(0 if ok and s["status"] == "completed" else 1)
PY
;; esac
# MCP tools on a NATS worker (ONLY=nats; needs nats-server): a worker whose PATH has the
# CLIs, in this project directory, and a coordinator whose PATH has none of them, so every
# agent step runs on the worker.
[ "${ONLY:-}" = nats ] && {
echo "== nats-mcp.yaml"
cp "$here"/nats-mcp.yaml "$W/"
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
"$NATS" -js -sd "$root/js" -a 127.0.0.1 -p -1 -l "$root/nats.log" -ports_file_dir "$root" > /dev/null 2>&1 &
nats_pid=$!
for _ in $(seq 100); do ls "$root"/*.ports > /dev/null 2>&1 && break; sleep 0.1; done
url=$(python3 -c 'import glob,json,sys; print(json.load(open(glob.glob(sys.argv[1]+"/*.ports")[0]))["nats"][0])' "$root")
"$RELAY" worker --nats "$url" --name real-worker --capacity 4 --dir "$W" > "$root/worker.log" 2>&1 &
worker_pid=$!
sleep 2
bare=$(echo "$PATH" | tr ':' '\n' | grep -v -e "$CLI_BIN" -e "$root/bin" | paste -sd:)
PATH=$bare "$RELAY" run nats-mcp.yaml --nats "$url" --json > "$root/nats.json" 2> "$root/nats.err" || status=1
python3 - "$root/nats.json" "$W" <<'PY' || { status=1; echo "  FAILED:"; sed 's/^/  /' "$root/nats.err" "$root/worker.log"; }
import json, sys
s = json.load(open(sys.argv[1]))
events = [json.loads(l) for l in open(f"{sys.argv[2]}/.agent-relay/runs/{s['runId']}/events.jsonl")]
where = {e["step"]: e.get("worker") for e in events if e["type"] == "agent:spawned"}
board = {e["key"]: e.get("by") for e in events if e["type"] == "state:set"}
ok = s["status"] == "completed"
for st in s["steps"]:
    on = where.get(st["name"])
    good = st["status"] == "completed" and on == "real-worker"
    ok &= good
    out = " ".join(st.get("output", "").split())
    print(f"  {st['name']:15} {st['status']:10} worker={on} output={out[:50]!r}")
for who in ["claude", "codex", "gemini", "opencode"]:
    ok &= f"by-{who}" in board
print(f"  board: {sorted(board)}")
sys.exit(0 if ok else 1)
PY
kill "$worker_pid" "$nats_pid" 2>/dev/null || true
wait "$worker_pid" "$nats_pid" 2>/dev/null || true
}
[ -n "${ONLY:-}" ] && [ "${ONLY}" != sessions ] || {
# Sessions: a step with `session: resume` continues its agent's conversation. The mock
# logs each request's body; the one carrying SECOND_X must carry FIRST_X (the earlier turn
# sent again), and THIRD_X's must not.
echo "== sessions.yaml"
cp "$here"/sessions.yaml "$W/"
"$RELAY" run sessions.yaml --json > "$root/sessions.json" 2> "$root/sessions.err" || status=1
python3 - "$root/sessions.json" "$root/mock.jsonl" "$W" <<'PY' || { status=1; echo "  FAILED:"; sed 's/^/  /' "$root/sessions.err"; }
import json, sys
s = json.load(open(sys.argv[1]))
events = [json.loads(l) for l in open(f"{sys.argv[3]}/.agent-relay/runs/{s['runId']}/events.jsonl")]
spawned = {e["step"]: e for e in events if e["type"] == "agent:spawned"}
steps = {st["name"]: st for st in s["steps"]}
log = [json.loads(l) for l in open(sys.argv[2])]
def bodies(word):
    return [json.dumps(e.get("body", "")) for e in log if word in (e.get("prompt") or "")]
ok = True
for x in ["CLAUDE", "CODEX", "GEMINI", "OPENCODE", "CLAUDEPTY", "CODEXPTY", "GEMINIPTY", "OPENCODEPTY"]:
    second, third = bodies("SECOND_" + x), bodies("THIRD_" + x)
    kept = any("FIRST_" + x in b for b in second)
    fresh = all("FIRST_" + x not in b for b in third)
    good = kept and fresh
    ok &= good
    names = [n for n in steps if n.upper().replace("-", "").startswith(x.replace("PTY", "")) ]
    status = " ".join(f"{n}={steps[n]['status']}" for n in sorted(names) if ("pty" in n) == x.endswith("PTY"))
    if x.endswith("PTY"):
        # The second terminal step ran in the process the first one left open.
        one, two = (spawned.get(f"{x[:-3].lower()}-pty-{n}", {}) for n in (1, 2))
        same = two.get("continued") is True and two.get("pgid") == one.get("pgid")
        ok &= same
        status += f" same-terminal={'yes' if same else 'NO'}"
    print(f"  {x:10} resumed={'yes' if kept else 'NO'} new={'yes' if fresh else 'NO'} {status}")
ok &= s["status"] == "completed"
sys.exit(0 if ok else 1)
PY
}
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
