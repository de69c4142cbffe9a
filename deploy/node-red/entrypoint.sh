#!/bin/bash
# Entrypoint of the Node-RED image: refuse to start with missing or placeholder secrets, make the
# shared audio directories, then start the package's embedded runtime (what `npm start` runs):
# Node-RED with the default flow, seeded into DATA_DIR/flows.json on first start.
set -euo pipefail

die() {
  echo "ai-dialer: $*" >&2
  exit 1
}

is_placeholder() {
  case "$1" in
    change-me* | changeme* | CHANGE-ME* | "<"*">") return 0 ;;
  esac
  return 1
}

# Secrets that must be real when set. (An empty optional one is fine: the feature is off.)
for name in ARI_PASSWORD MQTT_PASSWORD AGI_SECRET API_TOKEN NODE_RED_CREDENTIAL_SECRET EDITOR_PASSWORD LLM_API_KEY OPENAI_API_KEY; do
  value="${!name:-}"
  if [ -n "$value" ] && is_placeholder "$value"; then
    die "$name is still the placeholder from .env.example: set a real value in .env"
  fi
done
if [ -n "${DATABASE_URL:-}" ] && [[ "$DATABASE_URL" == *change-me* ]]; then
  die "DATABASE_URL still holds the placeholder password from .env.example: set POSTGRES_PASSWORD in .env"
fi
if [ -n "${ARI_URL:-}" ] && [ -z "${ARI_PASSWORD:-}" ]; then
  die "ARI_URL is set but ARI_PASSWORD is empty: set it in .env (the same as in Asterisk's ari.conf)"
fi

for dir in "${AUDIO_DIR:-}" "${RECORDINGS_DIR:-}"; do
  [ -z "$dir" ] || mkdir -p "$dir" || die "cannot create $dir (is the shared audio volume writable by uid $(id -u)?)"
done

home="${AI_DIALER_HOME:-/opt/ai-dialer/node_modules/node-red-contrib-ai-dialer}"
[ -f "$home/package.json" ] || die "node-red-contrib-ai-dialer is not installed at $home"

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
# The image carries the built package: run the runtime directly (scripts/start.js would first check
# whether a rebuild is needed, which needs the TypeScript sources an installed package does not have).
if [ -f "$home/dist/src/runtime/main.js" ]; then
  exec node -e 'require(process.argv[1]).main()' "$home/dist/src/runtime/main.js"
fi
exec node "$home/scripts/start.js"
