#!/usr/bin/env bash
# Opt-in check of agent-relay against the REAL claude, codex and gemini CLIs, offline:
# each CLI talks to a local mock model server that answers from `REPLY:` in the prompt.
# Not part of the default test suite (it needs ~750 MB of CLIs).
#
#   CLI_BIN=/path/to/node_modules/.bin  MOCKLLM=/path/to/mockllm.py  \
#   RELAY=target/debug/agent-relay  bash crates/relay-testkit/real-clis/check.sh
#
# Install the CLIs with:
#   npm install --prefix DIR @anthropic-ai/claude-code @openai/codex @google/gemini-cli
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${CLI_BIN:?set CLI_BIN to the directory holding claude, codex and gemini}"
: "${MOCKLLM:?set MOCKLLM to the mock model server script}"
RELAY=$(cd "$(dirname "${RELAY:-target/debug/agent-relay}")" && pwd)/$(basename "${RELAY:-target/debug/agent-relay}")

# Codex refuses helper binaries under /tmp, so the scratch HOME lives beside the CLIs.
root=$(mktemp -d "$(dirname "$CLI_BIN")/relay-real.XXXXXX")
H=$root/home W=$root/work
mkdir -p "$H" "$W"
trap 'kill $(cat "$root/mock.pid" 2>/dev/null) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$root"' EXIT

python3 "$MOCKLLM" --port 0 --port-file "$root/mock.port" --log "$root/mock.jsonl" > "$root/mock.out" 2>&1 &
echo $! > "$root/mock.pid"
for _ in $(seq 100); do [ -s "$root/mock.port" ] && break; sleep 0.1; done
P=$(cat "$root/mock.port")

cat > "$H/.claude.json" <<JSON
{"hasCompletedOnboarding": true,
 "customApiKeyResponses": {"approved": ["dummy"], "rejected": []},
 "projects": {"$W": {"hasTrustDialogAccepted": true}}}
JSON
mkdir -p "$H/.claude" "$H/.codex" "$H/.gemini"
echo '{"skipDangerousModePermissionPrompt": true}' > "$H/.claude/settings.json"
cat > "$H/.codex/config.toml" <<TOML
model = "mock-model"
model_provider = "mock"
check_for_update_on_startup = false
[model_providers.mock]
name = "Mock"
base_url = "http://127.0.0.1:$P/v1"
env_key = "MOCK_API_KEY"
wire_api = "responses"
[features]
daemon_auto_start = false
[projects."$W"]
trust_level = "trusted"
TOML
echo '{"security":{"auth":{"selectedType":"gemini-api-key"}}}' > "$H/.gemini/settings.json"

export HOME=$H PATH=$CLI_BIN:$PATH
export ANTHROPIC_BASE_URL=http://127.0.0.1:$P ANTHROPIC_API_KEY=dummy IS_SANDBOX=1 \
       CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1
export MOCK_API_KEY=dummy GEMINI_API_KEY=dummy GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:$P \
       GEMINI_CLI_TRUST_WORKSPACE=true
export RELAY_REAL_TAG="relay-real-$$"

cp "$here"/*.yaml "$W/"
cd "$W"
git init -q .
status=0
for wf in oneshot.yaml interactive.yaml; do
  echo "== $wf"
  if "$RELAY" run "$wf" --json > "$root/$wf.json" 2> "$root/$wf.err"; then
    python3 - "$root/$wf.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for st in s["steps"]:
    print(f"  {st['name']:8} {st['status']:10} output={st['output'].strip()!r}")
PY
  else
    echo "  FAILED:"; sed 's/^/  /' "$root/$wf.err"; status=1
  fi
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
exit $status
