# Sourced by check.sh and record.sh: a scratch HOME and project folder in which the real
# claude, codex, gemini, opencode and aider CLIs start without an account, talk only to
# the local mock model (mockllm.py) and skip their first-run dialogs.
#
# Needs: CLI_BIN (holds claude, codex, gemini, opencode), AIDER (the aider executable).
# Sets: root (scratch dir, removed on exit unless KEEP is set), H (HOME), W (project),
# P (the mock's port), and exports what the CLIs read.
: "${CLI_BIN:?set CLI_BIN to the directory holding claude, codex, gemini and opencode}"
: "${AIDER:=$(dirname "$CLI_BIN")/../venv/bin/aider}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Codex refuses helper binaries under /tmp, so the scratch HOME lives beside the CLIs.
root=$(mktemp -d "$(dirname "$CLI_BIN")/../relay-real.XXXXXX")
root=$(cd "$root" && pwd)
H=$root/home W=$root/work
mkdir -p "$H" "$W"
trap 'kill $(cat "$root/mock.pid" 2>/dev/null) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$root"' EXIT

python3 "$here/mockllm.py" --port 0 --port-file "$root/mock.port" --log "$root/mock.jsonl" ${MOCK_LOG_BODIES:+--log-bodies} \
  > "$root/mock.out" 2>&1 &
echo $! > "$root/mock.pid"
for _ in $(seq 100); do [ -s "$root/mock.port" ] && break; sleep 0.1; done
P=$(cat "$root/mock.port")

# claude: onboarding done, the dummy key approved, the folder trusted, no bypass warning.
cat > "$H/.claude.json" <<JSON
{"hasCompletedOnboarding": true,
 "customApiKeyResponses": {"approved": ["dummy"], "rejected": []},
 "projects": {"$W": {"hasTrustDialogAccepted": true}}}
JSON
mkdir -p "$H/.claude" "$H/.codex" "$H/.gemini" "$H/.config/opencode" "$H/.aider/caches"
echo '{"skipDangerousModePermissionPrompt": true}' > "$H/.claude/settings.json"
# codex: a custom provider (the built-in one tries a websocket), the folder trusted.
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
# gemini: API-key auth (else the base URL selects an auth type it then rejects).
echo '{"security":{"auth":{"selectedType":"gemini-api-key"}}}' > "$H/.gemini/settings.json"
# opencode: an OpenAI-compatible provider on the mock.
cat > "$H/.config/opencode/opencode.json" <<JSON
{"\$schema": "https://opencode.ai/config.json",
 "provider": {"mock": {"npm": "@ai-sdk/openai-compatible", "name": "Mock",
   "options": {"baseURL": "http://127.0.0.1:$P/v1", "apiKey": "dummy"},
   "models": {"mock-model": {"name": "Mock Model"}}}},
 "model": "mock/mock-model", "small_model": "mock/mock-model",
 "autoupdate": false, "share": "disabled"}
JSON
# aider: the model's price entry locally (else it fetches the map from the internet).
echo '{"openai/mock-model": {"max_input_tokens": 128000, "max_output_tokens": 8192, "litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 0, "output_cost_per_token": 0}}' \
  > "$H/.aider/caches/model_prices_and_context_window.json"

# aider reads its settings from a config file in HOME, so `aider` with the argv the broker
# builds reaches the mock too.
cat > "$H/.aider.conf.yml" <<YAML
model: openai/mock-model
openai-api-base: http://127.0.0.1:$P/v1
openai-api-key: dummy
check-update: false
analytics-disable: true
show-model-warnings: false
show-release-notes: false
YAML
mkdir -p "$root/bin"
ln -sf "$(cd "$(dirname "$AIDER")" && pwd)/$(basename "$AIDER")" "$root/bin/aider"

export HOME=$H PATH=$root/bin:$CLI_BIN:$PATH
export ANTHROPIC_BASE_URL=http://127.0.0.1:$P ANTHROPIC_API_KEY=dummy IS_SANDBOX=1 \
       CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1
export MOCK_API_KEY=dummy GEMINI_API_KEY=dummy GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:$P \
       GEMINI_CLI_TRUST_WORKSPACE=true
export OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1 OPENCODE_DISABLE_LSP_DOWNLOAD=1
export LITELLM_LOCAL_MODEL_COST_MAP=True
