#!/usr/bin/env bash
# guichet's benchmark: throughput, latency and memory of a release build on this machine.
# Needs wrk (Debian: apt-get install wrk) and curl. Loopback only. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
BASE="http://127.0.0.1:$PORT"
PASSWORD="banc d'essai tranquille"
OUT=${OUT:-bench/results}
mkdir -p "$OUT"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

echo "== building (release)"
cargo build --release -q -p guichet-core --example hash_rate
guichet_binary

cleanup() { kill "${SERVER:-}" 2>/dev/null || true; }
bench_workdir
export GUICHET_DATABASE_URL="sqlite://$WORK/bench.db"
export GUICHET_LISTEN="127.0.0.1:$PORT"
export GUICHET_PUBLIC_URL="$BASE"
export GUICHET_MAIL_TRANSPORT="file:$WORK/outbox"
export GUICHET_LOG=warn
# The benchmark logs in thousands of times from one address: lift the spraying throttle.
export GUICHET_ADDRESS_THROTTLE_FAILURES=1000000
[ -n "${BENCH_DATABASE_URL:-}" ] && export GUICHET_DATABASE_URL="$BENCH_DATABASE_URL"
# Forward auth as behind a proxy: loopback is the proxy, and two access rules to match.
export GUICHET_TRUSTED_PROXIES=127.0.0.1
cat >"$WORK/guichet.toml" <<TOML
[[access]]
url = "$BASE/espace/"
groups = ["adherents"]

[[access]]
url = "$BASE/espace/bureau/"
groups = ["bureau"]
TOML
export GUICHET_CONFIG="$WORK/guichet.toml"

printf '%s\n' "$PASSWORD" | $BIN member add bench --email bench@example.org --name 'Compte de mesure' --password-stdin >/dev/null
$BIN group add adherents >/dev/null
$BIN member join bench adherents >/dev/null
$BIN serve 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk -v k="$1:" '$1==k {print $2/1024 " MiB"}' /proc/$SERVER/status; }
p99() { awk '/ 99%/ {print $2}' "$1"; }
rate() { awk '/Requests\/sec/ {print $2}' "$1"; }

echo "== idle RSS: $(rss VmRSS)"
IDLE_RSS=$(rss VmRSS)

# A CSRF pair for the anonymous login form, and a signed-in session for /me.
JAR="$WORK/jar"
PAGE=$(curl -s -c "$JAR" "$BASE/login")
TOKEN=$(printf '%s' "$PAGE" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1)
CSRF_COOKIE=$(awk '$6 ~ /csrf/ {print $6 "=" $7}' "$JAR")
ENCODED_PASSWORD=$(printf '%s' "$PASSWORD" | sed "s/ /%20/g; s/'/%27/g")
STATUS=$(curl -s -b "$JAR" -c "$JAR" -o /dev/null -w '%{http_code}' -d "csrf_token=$TOKEN&identifier=bench&password=$ENCODED_PASSWORD" "$BASE/login")
[ "$STATUS" = 303 ] || { echo "the bench account cannot log in (HTTP $STATUS)" >&2; exit 1; }
SESSION=$(awk '$6 ~ /session/ {print $6 "=" $7}' "$JAR")
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $SESSION" "$BASE/me")" = 200 ] || { echo "no session for /me" >&2; exit 1; }

echo "== GET /login, $CONNECTIONS connections, ${SECONDS_PER_RUN}s"
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$BASE/login" >"$OUT/get-login.txt"
echo "   $(rate "$OUT/get-login.txt") req/s, p99 $(p99 "$OUT/get-login.txt")"

echo "== GET /me (signed in), $CONNECTIONS connections, ${SECONDS_PER_RUN}s"
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "Cookie: $SESSION" "$BASE/me" >"$OUT/get-me.txt"
echo "   $(rate "$OUT/get-me.txt") req/s, p99 $(p99 "$OUT/get-me.txt")"

echo "== GET /auth/check (signed in, allowed), $CONNECTIONS connections, ${SECONDS_PER_RUN}s"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $SESSION" -H "X-Original-URL: $BASE/espace/cours/1" "$BASE/auth/check")" = 200 ] \
  || { echo "/auth/check does not let the bench account in" >&2; exit 1; }
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "Cookie: $SESSION" \
  -H "X-Original-URL: $BASE/espace/cours/1" "$BASE/auth/check" >"$OUT/auth-check.txt"
echo "   $(rate "$OUT/auth-check.txt") req/s, p99 $(p99 "$OUT/auth-check.txt");" \
  "$(awk -v a="$(rate "$OUT/auth-check.txt")" -v b="$(rate "$OUT/get-login.txt")" 'BEGIN {printf "%.2f", a/b}')x GET /login"

echo "== raw Argon2id rate (same parameters, one thread per core, ${SECONDS_PER_RUN}s)"
target/release/examples/hash_rate "$SECONDS_PER_RUN" | tee "$OUT/hash-rate.txt"
RAW=$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' "$OUT/hash-rate.txt")

echo "== successful logins, $CONNECTIONS connections, ${SECONDS_PER_RUN}s"
BENCH_TOKEN=$TOKEN BENCH_COOKIE=$CSRF_COOKIE BENCH_PASSWORD=$ENCODED_PASSWORD \
  wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s bench/login.lua "$BASE/login" >"$OUT/logins.txt"
LOGINS=$(rate "$OUT/logins.txt")
BAD=$(awk '/Non-2xx or 3xx/ {print $5}' "$OUT/logins.txt")
[ -z "$BAD" ] || { echo "some logins failed: $BAD" >&2; exit 1; }
echo "   $LOGINS logins/s, $(awk -v a="$LOGINS" -v b="$RAW" 'BEGIN {printf "%.0f", 100*a/b}')% of the raw rate"

echo "== GET /me while logins flood (logins at $CONNECTIONS connections, /me at 8)"
BENCH_TOKEN=$TOKEN BENCH_COOKIE=$CSRF_COOKIE BENCH_PASSWORD=$ENCODED_PASSWORD \
  wrk -t1 -c"$CONNECTIONS" -d"$((SECONDS_PER_RUN + 4))s" -s bench/login.lua "$BASE/login" >"$OUT/flood-logins.txt" &
FLOOD=$!
sleep 2
wrk -t1 -c8 -d"${SECONDS_PER_RUN}s" --latency -H "Cookie: $SESSION" "$BASE/me" >"$OUT/me-during-flood.txt"
wait $FLOOD
echo "   /me p99 $(p99 "$OUT/me-during-flood.txt") at $(rate "$OUT/me-during-flood.txt") req/s; logins $(rate "$OUT/flood-logins.txt")/s"

echo "== GET /auth/check while logins flood (logins at $CONNECTIONS connections, /auth/check at 8)"
BENCH_TOKEN=$TOKEN BENCH_COOKIE=$CSRF_COOKIE BENCH_PASSWORD=$ENCODED_PASSWORD \
  wrk -t1 -c"$CONNECTIONS" -d"$((SECONDS_PER_RUN + 4))s" -s bench/login.lua "$BASE/login" >"$OUT/flood-logins-2.txt" &
FLOOD=$!
sleep 2
wrk -t1 -c8 -d"${SECONDS_PER_RUN}s" --latency -H "Cookie: $SESSION" \
  -H "X-Original-URL: $BASE/espace/cours/1" "$BASE/auth/check" >"$OUT/check-during-flood.txt"
wait $FLOOD
echo "   /auth/check p99 $(p99 "$OUT/check-during-flood.txt") at $(rate "$OUT/check-during-flood.txt") req/s; logins $(rate "$OUT/flood-logins-2.txt")/s"

echo "== RSS before the idle connections: now $(rss VmRSS), peak $(rss VmHWM)"
echo "== /healthz while ${IDLE_CONNECTIONS:=20000} idle connections are held"
python3 bench/idle.py 127.0.0.1 "$PORT" "$IDLE_CONNECTIONS" | tee "$OUT/idle.txt"

echo "== RSS: idle $IDLE_RSS, now $(rss VmRSS), peak $(rss VmHWM)"
{
  echo "idle_rss=$IDLE_RSS"
  echo "peak_rss=$(rss VmHWM)"
} >"$OUT/memory.txt"
