#!/bin/bash
# Entrypoint of the Asterisk image for the AI dialer.
#
# 1. Refuse to start with missing or placeholder secrets (ARI_PASSWORD, TRUNK_PASSWORD when a trunk is set).
# 2. Install the project's configuration (./asterisk-config, mounted read-only at /etc/asterisk-ai-dialer)
#    into /etc/asterisk, replacing ${NAME} / $NAME for the deployment settings listed in RENDER_VARS only
#    (trunk, ARI, NAT and RTP settings). AGI_TARGET_HOST, AGI_PORT and AGI_SECRET are NOT rendered: the
#    dialplan reads them from Asterisk's environment at run time (${ENV(...)}), so the secret stays out
#    of `dialplan show`. Dialplan variables such as ${CALL_ID} or ${ENV(...)} are
#    left exactly as written. Secrets therefore live only in .env, never in a file of the repository.
# 3. Write rtp.conf from RTP_START/RTP_END (the range docker-compose publishes) unless the project
#    ships its own, and create the directories Asterisk writes to (ARI recordings fail with HTTP 500
#    without spool/recording; the shared audio volume holds TTS prompts and call recordings).
# 4. Run Asterisk in the foreground as the unprivileged user `asterisk`.
#
# Paths are overridable for tests: ASTERISK_CONFIG_SRC (/etc/asterisk-ai-dialer), ASTERISK_CONFIG_DIR
# (/etc/asterisk), ASTERISK_SPOOL_DIR (/var/spool/asterisk).
set -euo pipefail

SRC="${ASTERISK_CONFIG_SRC:-/etc/asterisk-ai-dialer}"
DEST="${ASTERISK_CONFIG_DIR:-/etc/asterisk}"
SPOOL="${ASTERISK_SPOOL_DIR:-/var/spool/asterisk}"

RENDER_VARS=(
  ARI_USERNAME ARI_PASSWORD ARI_APP
  TRUNK_HOST TRUNK_PORT TRUNK_USERNAME TRUNK_PASSWORD TRUNK_CALLER_ID TRUNK_TRANSPORT TRUNK_MATCH
  EXTERNAL_IP LOCAL_NET SIP_PORT RTP_START RTP_END
)

die() {
  echo "asterisk entrypoint: $*" >&2
  exit 1
}

is_placeholder() {
  case "$1" in
    change-me* | changeme* | CHANGE-ME* | "<"*">") return 0 ;;
  esac
  return 1
}

check_secret() { # name [required]
  local name="$1" value="${!1:-}"
  if [ -z "$value" ]; then
    [ "${2:-}" = required ] && die "$name is empty: set it in .env"
    return 0
  fi
  is_placeholder "$value" && die "$name is still the placeholder from .env.example: set a real value in .env"
  [[ "$value" == *$'\n'* ]] && die "$name must be a single line"
  return 0
}

# Defaults shared with docker-compose.yml.
export ARI_USERNAME="${ARI_USERNAME:-ai-dialer}"
export ARI_APP="${ARI_APP:-ai-dialer}"
export AGI_TARGET_HOST="${AGI_TARGET_HOST:-node-red}"
export AGI_PORT="${AGI_PORT:-4573}"
export TRUNK_PORT="${TRUNK_PORT:-5060}"
export TRUNK_TRANSPORT="${TRUNK_TRANSPORT:-udp}"
# Addresses/CIDRs whose INVITEs are the trunk (comma-separated); default: the trunk host.
export TRUNK_MATCH="${TRUNK_MATCH:-${TRUNK_HOST:-}}"
export SIP_PORT="${SIP_PORT:-5060}"
export RTP_START="${RTP_START:-10000}"
export RTP_END="${RTP_END:-10100}"

check_secret ARI_PASSWORD required
check_secret AGI_SECRET
if [ -n "${TRUNK_HOST:-}" ]; then
  check_secret TRUNK_PASSWORD
fi
for n in RTP_START RTP_END AGI_PORT TRUNK_PORT SIP_PORT; do
  [[ "${!n}" =~ ^[0-9]+$ ]] && [ "${!n}" -ge 1 ] && [ "${!n}" -le 65535 ] || die "$n must be a port number (got '${!n}')"
done
[ "$RTP_START" -lt "$RTP_END" ] || die "RTP_START ($RTP_START) must be below RTP_END ($RTP_END)"

if [ -d "$SRC" ] && [ -n "$(ls -A "$SRC" 2>/dev/null)" ]; then
  shell_format=""
  for v in "${RENDER_VARS[@]}"; do
    export "$v=${!v:-}"
    shell_format+="\${$v} "
  done
  mkdir -p "$DEST"
  while IFS= read -r -d '' file; do
    rel="${file#"$SRC"/}"
    mkdir -p "$DEST/$(dirname "$rel")"
    envsubst "$shell_format" < "$file" > "$DEST/$rel.tmp"
    mv "$DEST/$rel.tmp" "$DEST/$rel"
    chmod 0640 "$DEST/$rel"
  done < <(find "$SRC" -type f ! -name '.*' ! -name '*.md' -print0)
  echo "asterisk entrypoint: installed $(find "$SRC" -type f ! -name '.*' ! -name '*.md' | wc -l) file(s) from $SRC into $DEST"
else
  echo "asterisk entrypoint: WARNING: $SRC is empty or missing; using the configuration already in $DEST" >&2
fi

if [ ! -f "$SRC/rtp.conf" ]; then
  cat > "$DEST/rtp.conf" <<RTP
; Written by the container entrypoint from RTP_START/RTP_END (the range docker-compose publishes).
[general]
rtpstart=${RTP_START}
rtpend=${RTP_END}
strictrtp=yes
icesupport=no
RTP
fi

mkdir -p "$SPOOL/recording" "$SPOOL/tmp" "$SPOOL/outgoing"
for dir in "${AUDIO_DIR:-}" "${RECORDINGS_DIR:-}"; do
  [ -z "$dir" ] || mkdir -p "$dir"
done

if [ "$(id -u)" = 0 ] && id asterisk >/dev/null 2>&1; then
  chown -R asterisk:asterisk "$DEST" "$SPOOL"
  for dir in "${AUDIO_DIR:-}" "${RECORDINGS_DIR:-}"; do
    [ -z "$dir" ] || chown asterisk:asterisk "$dir"
  done
  for dir in /var/lib/asterisk /var/log/asterisk /var/run/asterisk; do
    [ ! -d "$dir" ] || chown -R asterisk:asterisk "$dir"
  done
fi

[ "$#" -gt 0 ] || set -- asterisk -f -U asterisk -G asterisk -vvv
exec "$@"
