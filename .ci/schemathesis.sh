#!/usr/bin/env bash
# The spec is the contract (issue 12, point 4): Schemathesis (PyPI, pinned) runs
# every check against a live `sluice serve` on 127.0.0.1, generated from the
# server's own /openapi.json, bounded in examples per operation and in time.
#
#   .ci/schemathesis.sh [path/to/sluice]      (default target/release/sluice)
#
# Server: a free port, a throwaway data dir with the sqlite store in it, one
# API key, the embedded sample router, the built-in profiles, and two models
# behind a fake upstream on 127.0.0.1 (tests/python/fake_upstream.py: both wire
# formats, blocking and streamed): HCX-007 (CLOVA v3) and gpt-small
# (OpenAI-compatible). `sluice admin` seeds the store first: an instructor, a
# student and a class of both models. Every request carries the student's key,
# which opens the CLOVA routes as well as /user/practice/...
#
# Every served operation is tested but the /testapp and /serviceapp copies of
# each path: the same handlers, served from the same table (app.rs API x
# PREFIXES); testing them again triples the time and finds nothing new.
# Pinned, not filtered: {modelName} is HCX-007 and class_id the seeded class in
# every generated case. The document lists the server's models as an enum, but
# each model has its own maxTokens bound (HCX-003 4096, HCX-007 32768, ...) and
# OpenAPI cannot tie a body bound to a path value; HCX-007's bound is the
# schema's maximum, so for it the document and the server agree exactly. The
# class id is the one class the student is in: any other is 403 or 404, which
# the document says but a schema cannot tell apart from a valid id.
# One check widened for one operation: a document upload may be 400 for
# content OpenAPI cannot describe (UTF-8 text, JSONL of objects); see the
# [[operations]] table below.
# Phases coverage, fuzzing and stateful: the examples phase stops with a
# Hypothesis "Inconsistent results" runtime error inside schemathesis 4.32.5's
# example extraction (a tool problem, not a server answer). One worker: with
# two, CPython 3.11's ast module fails inside Hypothesis ("AST constructor
# recursion depth mismatch"), again the tool's problem.
# Recorded run (2026-11-30 21:37 UTC, schemathesis 4.32.5, seed 12, 2-core box):
# 47 operations selected of 75, phases coverage, fuzzing and stateful, 11,535
# generated cases, 161 s, zero failures, zero errors. (An earlier CI run on the
# same seed failed 7 coverage cases: a wrong-type maxTokens beside a valid
# maxCompletionTokens, a non-boolean stream and a null knowledge query were
# accepted; then, with stream read, 2 SSE answers did not match a `string`
# schema. Each is fixed in the server or the document, with a test.)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-target/release/sluice}"
[ -x "$bin" ] || { echo "schemathesis.sh: no binary at $bin" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

SCHEMATHESIS_VERSION=4.32.5
venv="${TMPDIR:-/tmp}/sluice-schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/pip" show schemathesis 2>/dev/null | grep -qx "Version: $SCHEMATHESIS_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-schemathesis.XXXXXX")"
server=""
upstream=""
cleanup() {
    for pid in $server $upstream; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# The fake upstream: prints its base URL, serves until killed.
python3 -u -c '
import sys, time
sys.path.insert(0, sys.argv[1])
from fake_upstream import FakeUpstream
fake = FakeUpstream()
print(fake.base, flush=True)
while True:
    time.sleep(3600)
' "$PWD/tests/python" >"$work/upstream.out" 2>"$work/upstream.log" &
upstream=$!
fake=""
for _ in $(seq 1 100); do
    fake="$(head -n 1 "$work/upstream.out" 2>/dev/null || true)"
    [ -n "$fake" ] && break
    sleep 0.1
done
[ -n "$fake" ] || { echo "schemathesis.sh: the fake upstream did not start" >&2; cat "$work/upstream.log" >&2; exit 1; }

database="sqlite:$work/sluice.db"
admin() { env -u SLUICE_DATABASE_URL "$bin" admin --database "$database" "$@"; }
admin user create instructor >/dev/null 2>&1
student_key="$(admin user create student 2>/dev/null)"
class_id="$(admin class create ci --instructor instructor --models HCX-007,gpt-small --primary HCX-007)"
admin class add-member "$class_id" student >/dev/null
# A class the student teaches, so that the instructor routes (issue 25) can
# answer more than 404. Their {class_id} is not pinned: a pinned path value
# replaces the wrong-typed ones of negative cases, which then pass as valid.
taught_id="$(admin class create ci-taught --instructor student --models gpt-small --primary gpt-small)"
admin class add-member "$taught_id" instructor >/dev/null
[ -n "$student_key" ] && [ -n "$class_id" ] && [ -n "$taught_id" ] || { echo "schemathesis.sh: seeding the store failed" >&2; exit 1; }

cat >"$work/sluice.toml" <<TOML
database = "$database"

[models.HCX-007]
provider = "clova"
base_url = "$fake"
max_retries = 0
timeout_ms = 5000

[models.gpt-small]
provider = "openai"
base_url = "$fake/v1"
profile = "o200k"
max_retries = 0
timeout_ms = 5000
TOML

# Port 0: the kernel picks a free port; the banner says which.
# One API key, so that /v1/auth/token issues tokens and the ignored_auth check
# has something to check (every API call without it must be 401).
key="ci-schemathesis-$$-$RANDOM"
(cd "$work" && exec env -u SLUICE_ADDR -u SLUICE_DATABASE_URL SLUICE_API_KEYS="$key" \
    "$bin" serve --config "$work/sluice.toml" --addr 127.0.0.1:0 \
    >"$work/serve.out" 2>"$work/serve.log") &
server=$!
base=""
for _ in $(seq 1 100); do
    base="$(sed -n 's#^sluice serve: listening on \(http://127\.0\.0\.1:[0-9]*\).*#\1#p' "$work/serve.out" 2>/dev/null || true)"
    if [ -n "$base" ] && curl -fsS "$base/healthz" >/dev/null 2>&1; then
        break
    fi
    base=""
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$base" ]; then
    echo "schemathesis.sh: the server did not come up" >&2
    cat "$work/serve.out" "$work/serve.log" >&2 || true
    exit 1
fi
echo "sluice serve at $base (schemathesis $SCHEMATHESIS_VERSION)"

cat >"$work/schemathesis.toml" <<TOML
[parameters]
"path.modelName" = "HCX-007"
"query.class_id" = $class_id

# A document's bytes must be UTF-8 text and, as jsonl, JSON objects with text:
# OpenAPI cannot say so of a binary body, so the document lists the 400 and a
# schema-valid upload may get it.
[[operations]]
include-path = "/user/practice/knowledge/{knowledge_id}/documents"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# A schema-valid vote may name an ordinary turn (400) or one already voted on
# (409): the document lists both; a schema cannot tell a blind turn's id apart.
[[operations]]
include-path = "/user/practice/sessions/{session_id}/turns/{turn_id}/vote"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
TOML

start=$SECONDS
status=0
# From the throwaway dir: schemathesis keeps a .schemathesis/ cache in its cwd.
(cd "$work" && exec "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    --phases coverage,fuzzing,stateful \
    --checks all \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
    --max-time "${SCHEMATHESIS_MAX_TIME:-160}" \
    --request-timeout 10 \
    --workers 1 \
    --header "Authorization: Bearer $student_key" \
    --seed "${SCHEMATHESIS_SEED:-12}" \
    --exclude-path-regex '^/(testapp|serviceapp)/') \
    || status=$?
echo "schemathesis: exit $status after $((SECONDS - start)) s"
exit "$status"
