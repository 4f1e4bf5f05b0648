#!/usr/bin/env bash
# `guichet member import` at scale: 100,000 rows as French Excel saves a WordPress export
# (`;`, Windows-1252, CRLF, a phpass hash and two groups per row), into a fresh SQLite
# file — or PostgreSQL with BENCH_DATABASE_URL — with the wall time and the peak memory
# (GNU time's maximum resident set size). Then the same file again with --update (every
# row unchanged). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

ROWS=${ROWS:-100000}
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install time" >&2; exit 1; }

echo "== building (release)"
guichet_binary
bench_workdir
export GUICHET_DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$WORK/import.db}"
export GUICHET_MAIL_TRANSPORT="file:$WORK/outbox"
export GUICHET_LOG=warn

echo "== writing $ROWS rows"
python3 - "$ROWS" "$WORK/members.csv" <<'PY'
import sys
rows, path = int(sys.argv[1]), sys.argv[2]
with open(path, "wb") as f:
    f.write(b"identifier;email;name;groups;password_hash\r\n")
    for n in range(rows):
        line = f"membre{n};membre{n}@chu-exemple.fr;Hélène Bérard {n};adherents|formateurs;$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0\r\n"
        f.write(line.encode("cp1252"))
PY
"$BIN" migrate >/dev/null

run() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$BIN" member import "$WORK/members.csv" "$@" >"$WORK/report" 2>/dev/null || true
  read -r seconds kib <"$WORK/time"
  echo "$label: $(head -1 "$WORK/report") in ${seconds} s, peak memory $((kib / 1024)) MiB" | tee -a "$OUT/import.txt"
}
run "first import ($ROWS rows)" --create-groups
run "again with --update" --update
