#!/usr/bin/env bash
# Start every process of the assistant in the foreground; Ctrl-C stops them all.
# Ports (contract): Rasa 5005, action server 5055, console 8000, on loopback
# unless CRM_HOST says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false

HOST="${CRM_HOST:-127.0.0.1}"
RASA_PORT="${RASA_PORT:-5005}"
ACTIONS_PORT="${ACTIONS_PORT:-5055}"
CONSOLE_PORT="${CONSOLE_PORT:-8000}"
MODEL="${RASA_MODEL:-models/rasa/crm.tar.gz}"
mkdir -p var/log

# Signed identities and the agent console need a secret: make one for this
# installation on first run (kept in .env, which is not committed).
if [ -z "${CRM_IDENTITY_SECRET:-}" ] && ! grep -q '^CRM_IDENTITY_SECRET=' .env 2>/dev/null; then
  echo "CRM_IDENTITY_SECRET=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(32))')" >> .env
  echo "created a new CRM_IDENTITY_SECRET in .env"
fi

if [ ! -f "$MODEL" ]; then
  echo "No trained Rasa model at $MODEL: run 'make demo' (or 'make train') first." >&2
  exit 1
fi

.venv/bin/crm-ml agents demo >/dev/null
CHAT_PATH=$(.venv/bin/crm-ml chat-link customer:12347)

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/python -m rasa_sdk --actions actions --port "$ACTIONS_PORT" \
  > >(tee var/log/actions.log | sed 's/^/[actions] /') 2>&1 &
pids+=($!)

CRM_RASA_URL="http://$HOST:$RASA_PORT" .venv/bin/python -m uvicorn console.app:app --ws none \
  --host "$HOST" --port "$CONSOLE_PORT" \
  > >(tee var/log/console.log | sed 's/^/[console] /') 2>&1 &
pids+=($!)

# With CRM_EVENT_BROKER_URL (RabbitMQ), Rasa publishes the conversation events to a
# durable queue and this consumer writes them to the CRM (crm_ml/events.py).
if [ -n "${CRM_EVENT_BROKER_URL:-}" ]; then
  .venv/bin/crm-ml events consume \
    > >(tee var/log/events.log | sed 's/^/[events] /') 2>&1 &
  pids+=($!)
fi

# Rasa through `python -m bot`: the `rasa` command with known, harmless library
# warnings filtered (bot/quiet.py names each one and why). SQLAlchemy 1.4's
# "2.0 is coming" notice and TensorFlow's C++ start-up log are switched off by
# their own variables, read before any Python filter applies.
SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2 \
.venv-bot/bin/python -m bot run --model "$MODEL" --endpoints endpoints.yml --credentials credentials.yml \
  --interface "$HOST" --port "$RASA_PORT" --cors "http://$HOST:$CONSOLE_PORT" \
  > >(tee var/log/rasa.log | sed 's/^/[rasa] /') 2>&1 &
pids+=($!)

printf 'waiting for Rasa to load the model'
for _ in $(seq 1 180); do
  if curl -sf "http://$HOST:$RASA_PORT/" >/dev/null 2>&1; then break; fi
  printf '.'; sleep 1
done
echo
if ! curl -sf "http://$HOST:$RASA_PORT/" >/dev/null 2>&1; then
  echo "Rasa did not start; see var/log/rasa.log" >&2; exit 1
fi
cat <<MSG

  The assistant is up.
  Chat from this terminal:
    curl -s http://$HOST:$RASA_PORT/webhooks/rest/webhook -H 'Content-Type: application/json' \\
      -d '{"sender": "me", "message": "can you recommend something"}'
    (anonymous; staff questions such as "how many customers do we have" need a
    signed rep identity in metadata.auth, see README.md)
  Rasa REST channel:  http://$HOST:$RASA_PORT/webhooks/rest/webhook
  Action server:      http://$HOST:$ACTIONS_PORT/health
  Web chat:           http://$HOST:$CONSOLE_PORT/chat
  ... signed in as customer 12347: http://$HOST:$CONSOLE_PORT$CHAT_PATH
  Agent console:      http://$HOST:$CONSOLE_PORT/  (user: agent, password: ${CRM_DEMO_AGENT_PASSWORD:-demo-agent})
  Agents' API docs:   http://$HOST:$CONSOLE_PORT/api/docs  (signed-in agents only)
  Telegram:           $( [ -n "${TELEGRAM_TOKEN:-}" ] && echo "on (long polling)" || echo "off (set TELEGRAM_TOKEN)")
  Events to the CRM:  $( [ -n "${CRM_EVENT_BROKER_URL:-}" ] && echo "through RabbitMQ (crm-ml events consume)" || echo "written by Rasa (set CRM_EVENT_BROKER_URL for RabbitMQ)")
  Press Ctrl-C to stop everything.

MSG
wait -n "${pids[@]}"
