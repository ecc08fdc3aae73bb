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

# Replicas (CRM_RASA_REPLICAS, CRM_ACTIONS_REPLICAS; default 1 each): every Rasa replica
# and action server on its own port after the public one, HAProxy from Debian on the
# public ports (deploy/haproxy.cfg shows the configuration for two of each), the
# tracker store on PostgreSQL and the lock store on Redis (docs/DEPLOYMENT.md).
REPLICAS="${CRM_RASA_REPLICAS:-1}"
ACTION_REPLICAS="${CRM_ACTIONS_REPLICAS:-$REPLICAS}"
ENDPOINTS=endpoints.yml
if [ "$REPLICAS" -gt 1 ] || [ "$ACTION_REPLICAS" -gt 1 ]; then
  HAPROXY=$(command -v haproxy || ls /usr/sbin/haproxy 2>/dev/null || true)
  if [ -z "$HAPROXY" ]; then
    echo "Replicas run behind HAProxy: install it with 'make haproxy'." >&2; exit 1
  fi
  ENDPOINTS=var/endpoints.replicas.yml
  .venv/bin/python scripts/replica_endpoints.py --tracker "${CRM_TRACKER_DB_URL:-}" \
    --redis "${CRM_REDIS_URL:-redis://127.0.0.1:6379/0}" \
    --actions "http://$HOST:$ACTIONS_PORT/webhook" > "$ENDPOINTS"
  RASA_PORTS=$(seq -s, $((RASA_PORT + 1)) $((RASA_PORT + REPLICAS)))
  ACTION_PORTS=$(seq -s, $((ACTIONS_PORT + 1)) $((ACTIONS_PORT + ACTION_REPLICAS)))
  .venv/bin/python scripts/haproxy_config.py --rasa "$RASA_PORTS" --actions "$ACTION_PORTS" \
    --rasa-bind "$HOST:$RASA_PORT" --actions-bind "$HOST:$ACTIONS_PORT" --host "$HOST" \
    > var/haproxy.cfg
  export TICKET_LOCK_LIFETIME="${TICKET_LOCK_LIFETIME:-30}"  # a dead replica's locks expire
  "$HAPROXY" -db -f var/haproxy.cfg > >(tee var/log/haproxy.log | sed 's/^/[haproxy] /') 2>&1 &
  pids+=($!)
else
  RASA_PORTS="$RASA_PORT"
  ACTION_PORTS="$ACTIONS_PORT"
fi

n=0
for port in ${ACTION_PORTS//,/ }; do
  n=$((n + 1))
  name="actions$( [ "$ACTION_REPLICAS" -gt 1 ] && echo "$n")"
  .venv/bin/python -m rasa_sdk --actions actions --port "$port" \
    > >(tee "var/log/$name.log" | sed "s/^/[$name] /") 2>&1 &
  pids+=($!)
done

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
# With replicas, every one gets the Telegram token; the one holding the lease in the
# tracker store polls (bot/telegram/_leader.py, docs/DEPLOYMENT.md).
n=0
for port in ${RASA_PORTS//,/ }; do
  n=$((n + 1))
  name="rasa$( [ "$REPLICAS" -gt 1 ] && echo "$n")"
  SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2 \
  .venv-bot/bin/python -m bot run --model "$MODEL" --endpoints "$ENDPOINTS" \
    --credentials credentials.yml --interface "$HOST" --port "$port" \
    --cors "http://$HOST:$CONSOLE_PORT" \
    > >(tee "var/log/$name.log" | sed "s/^/[$name] /") 2>&1 &
  pids+=($!)
done

printf 'waiting for Rasa to load the model'
for _ in $(seq 1 180); do
  if curl -sf "http://$HOST:$RASA_PORT/" >/dev/null 2>&1; then break; fi
  printf '.'; sleep 1
done
echo
if ! curl -sf "http://$HOST:$RASA_PORT/" >/dev/null 2>&1; then
  echo "Rasa did not start; see var/log/rasa*.log" >&2; exit 1
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
  Replicas:           $REPLICAS Rasa, $ACTION_REPLICAS action server(s)$( [ "$REPLICAS" -gt 1 ] || [ "$ACTION_REPLICAS" -gt 1 ] && echo " behind HAProxy (var/haproxy.cfg)")
  Web chat:           http://$HOST:$CONSOLE_PORT/chat
  ... signed in as customer 12347: http://$HOST:$CONSOLE_PORT$CHAT_PATH
  Agent console:      http://$HOST:$CONSOLE_PORT/  (user: agent, password: ${CRM_DEMO_AGENT_PASSWORD:-demo-agent})
  Agents' API docs:   http://$HOST:$CONSOLE_PORT/api/docs  (signed-in agents only)
  Telegram:           $( [ -n "${TELEGRAM_TOKEN:-}" ] && echo "on (long polling)" || echo "off (set TELEGRAM_TOKEN)")
  Events to the CRM:  $( [ -n "${CRM_EVENT_BROKER_URL:-}" ] && echo "through RabbitMQ (crm-ml events consume)" || echo "written by Rasa (set CRM_EVENT_BROKER_URL for RabbitMQ)")
  Press Ctrl-C to stop everything.

MSG
wait -n "${pids[@]}"
