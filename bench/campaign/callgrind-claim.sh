#!/bin/bash
# Instructions a claim executes in the PostgreSQL backend, counted with callgrind (user space; neither the load
# nor the disk moves it): a database copied from <template>, run by a single-user backend (`postgres --single`)
# under valgrind, once with <setup> and W claims, once with <setup> and W + M claims; the difference / M.
#
# Needs a private cluster of one's own (never the shared server: the cluster is stopped for each run), e.g.
#   runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /work/claims-pg/data -U postgres -A trust
#   (listen_addresses = '', unix_socket_directories = '/tmp/claims-sock', port = 5499 in its postgresql.conf)
# a template seeded there (e.g. PROBE_TEMPLATE=tpl_u20 DATABASE_URL='postgres://postgres@localhost:5499/postgres?host=/tmp/claims-sock'
# node dist/bench/campaign/cpu-probe.js), and one claim per line in <claim file>, e.g. for ours
#   setup: select claim_warm();  prepare c(int,int,timestamptz,text,int) as select ... from claim_contacts($1, $2, $3, $4, $5);
#   claim: execute c(1, 1, '2026-06-15T18:00:00Z', 'w0', 2);
# and for the peer its statement (bench/campaign/peer-claim.ts) with the values written in (planned each time,
# as the bench sends it unnamed) on a copy prepared with PEER_PREPARE_SQL.
#
# usage: callgrind-claim.sh <template> <setup file> <claim file> <W> <M> [data dir] [socket dir] [port]
set -e
DB=$1; SETUP=$2; LINE=$3; W=$4; M=$5; D=${6:-/work/claims-pg/data}; SOCK=${7:-/tmp/claims-sock}; PORT=${8:-5499}
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
OUT=$(mktemp -d)
chmod a+rwx "$OUT"
run() { # setup and n claims; prints the instructions counted
  local n=$1 tag=$2
  { cat "$SETUP"; for _ in $(seq 1 "$n"); do cat "$LINE"; done; } > "$OUT/in.$tag"
  runuser -u postgres -- psql -h "$SOCK" -p "$PORT" -U postgres -qc "drop database if exists cg_run" -c "create database cg_run template $DB" > /dev/null
  runuser -u postgres -- "$BIN/pg_ctl" -D "$D" -w -m fast stop > /dev/null
  runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$tag.out" "$BIN/postgres" --single -D "$D" cg_run \
    < "$OUT/in.$tag" > "$OUT/stdout.$tag" 2> "$OUT/vg.$tag"
  runuser -u postgres -- "$BIN/pg_ctl" -D "$D" -l "$D/../log" -w start > /dev/null
  grep -o 'Collected : [0-9]*' "$OUT/vg.$tag" | grep -o '[0-9]*'
}
a=$(run "$W" w)
b=$(run $((W + M)) m)
echo "$DB $(basename "$SETUP") $(basename "$LINE"): instructions per claim $(((b - a) / M)) (setup + $W claims $a, setup + $((W + M)) claims $b; outputs in $OUT)"
