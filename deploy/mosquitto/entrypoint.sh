#!/bin/sh
# Mosquitto entrypoint for the AI dialer: generate the password file and the ACL from the
# environment (.env), refuse placeholder or missing secrets, then run the broker.
#
# Variables: MQTT_WRITER_USER, MQTT_WRITER_PASSWORD, MQTT_READER_USER, MQTT_READER_PASSWORD.
# Paths (overridable for tests): MOSQUITTO_CONFIG_DIR (/mosquitto/config), MOSQUITTO_AUTH_DIR (/mosquitto/data/auth).
set -eu

CONFIG_DIR="${MOSQUITTO_CONFIG_DIR:-/mosquitto/config}"
AUTH_DIR="${MOSQUITTO_AUTH_DIR:-/mosquitto/data/auth}"

die() {
  echo "mosquitto entrypoint: $*" >&2
  exit 1
}

check_user() { # name value
  case "$2" in
    '') die "$1 is empty: set it in .env" ;;
    *[!A-Za-z0-9_.-]*) die "$1 may contain only letters, digits, '_', '.' and '-' (got '$2')" ;;
  esac
}

check_secret() { # name value
  [ -n "$2" ] || die "$1 is empty: set it in .env"
  case "$2" in
    change-me*|changeme*|CHANGE-ME*) die "$1 is still the placeholder from .env.example: set a real password in .env" ;;
  esac
  [ "${#2}" -ge 8 ] || die "$1 is shorter than 8 characters"
  case "$2" in
    *"
"*) die "$1 must be a single line" ;;
  esac
}

W_USER="${MQTT_WRITER_USER:-}"
W_PASS="${MQTT_WRITER_PASSWORD:-}"
R_USER="${MQTT_READER_USER:-}"
R_PASS="${MQTT_READER_PASSWORD:-}"
check_user MQTT_WRITER_USER "$W_USER"
check_user MQTT_READER_USER "$R_USER"
[ "$W_USER" != "$R_USER" ] || die "MQTT_WRITER_USER and MQTT_READER_USER must be different accounts"
check_secret MQTT_WRITER_PASSWORD "$W_PASS"
check_secret MQTT_READER_PASSWORD "$R_PASS"

mkdir -p "$AUTH_DIR"
umask 077
rm -f "$AUTH_DIR/passwd.new" "$AUTH_DIR/acl.new"
: > "$AUTH_DIR/passwd.new"
mosquitto_passwd -b "$AUTH_DIR/passwd.new" "$W_USER" "$W_PASS"
mosquitto_passwd -b "$AUTH_DIR/passwd.new" "$R_USER" "$R_PASS"
sed -e "s/@WRITER@/$W_USER/g" -e "s/@READER@/$R_USER/g" "$CONFIG_DIR/acl.template" > "$AUTH_DIR/acl.new"
mv "$AUTH_DIR/passwd.new" "$AUTH_DIR/passwd"
mv "$AUTH_DIR/acl.new" "$AUTH_DIR/acl"
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
  chown -R mosquitto:mosquitto "$AUTH_DIR"
  chown mosquitto:mosquitto "$(dirname "$AUTH_DIR")" 2>/dev/null || true
fi

[ "$#" -gt 0 ] || set -- mosquitto -c "$CONFIG_DIR/mosquitto.conf"
exec "$@"
