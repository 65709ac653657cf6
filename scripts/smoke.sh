#!/usr/bin/env bash
# Smoke test of a running API, wherever it runs: the local runner, `cargo lambda watch`, or
# a stack deployed with `sam deploy` (its ApiUrl output). Runs the README's calls on keys of
# its own (nothing else is touched: no /stats/reset) and checks what a client relies on:
# answers and status codes, problem+json errors (the default route's 404 included), the
# API key, rate-limit headers, the method guard.
#
#   scripts/smoke.sh BASE_URL [API_KEY]
#
# Needs bash and curl. Exits 0 when every check passed, 1 otherwise, naming each failure.
set -uo pipefail

BASE="${1:?usage: scripts/smoke.sh BASE_URL [API_KEY]}"
BASE="${BASE%/}"
KEY="${2:-}"
RUN="smoke-$(date +%s)-$$"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
FAILED=0
STATUS=""

# req METHOD PATH [BODY] [--no-key]: sets STATUS; the body is in $TMP/body, headers in $TMP/head.
req() {
  local method="$1" path="$2" body="${3:-}" nokey="${4:-}"
  local args=(-sS -X "$method" -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' --max-time 30)
  [ "$method" = HEAD ] && args=(-sS -I -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' --max-time 30)
  if [ -n "$KEY" ] && [ "$nokey" != --no-key ]; then args+=(-H "X-API-Key: $KEY"); fi
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data "$body"); fi
  STATUS="$(curl "${args[@]}" "$BASE$path" 2>"$TMP/err")" || STATUS="curl failed: $(cat "$TMP/err")"
}

ok() { printf '  ok    %s\n' "$1"; }
fail() { printf '  FAIL  %s\n' "$1"; FAILED=1; }

# expect WHAT STATUS [BODY_FRAGMENT...]
expect() {
  local what="$1" want="$2"; shift 2
  if [ "$STATUS" != "$want" ]; then
    fail "$what: status $STATUS, expected $want: $(head -c 300 "$TMP/body" 2>/dev/null)"
    return
  fi
  local fragment
  for fragment in "$@"; do
    if ! grep -qF -- "$fragment" "$TMP/body"; then
      fail "$what: answer lacks $fragment: $(head -c 300 "$TMP/body")"
      return
    fi
  done
  ok "$what"
}

# header NAME: the value of a response header (case-insensitive name), trimmed.
header() {
  grep -i "^$1:" "$TMP/head" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}

expect_header() { # expect_header WHAT NAME VALUE_PREFIX
  local value; value="$(header "$2")"
  case "$value" in
    "$3"*) ok "$1" ;;
    *) fail "$1: $2 is '$value', expected '$3...'" ;;
  esac
}

echo "==> smoke test of $BASE (keys under $RUN)"

req GET /health
expect "GET /health" 200 '"status":"ok"'

if [ -n "$KEY" ]; then
  req GET /stats "" --no-key
  expect "no key: 401 problem" 401 '"status":401'
  expect_header "no key: problem+json" content-type application/problem+json
  expect_header "no key: WWW-Authenticate" www-authenticate Bearer
fi

req POST /cache "{\"key\":\"$RUN\",\"value\":\"world\",\"ttl\":300}"
expect "POST /cache" 201 "\"key\":\"$RUN\""
req GET "/cache/$RUN"
expect "GET /cache/{key}" 200 '"value":"world"'
req GET "/cache?pattern=$RUN*&count=100"
expect "GET /cache?pattern=" 200 "$RUN"
req DELETE "/cache/$RUN"
expect "DELETE /cache/{key}" 200
req GET "/cache/$RUN"
expect "GET a deleted key: 404 problem" 404 '"status":404'
expect_header "404 is problem+json" content-type application/problem+json

req GET "/no-such-route/$RUN"
expect "unknown path: 404 problem (default route)" 404 '"status":404'
expect_header "unknown path: problem+json" content-type application/problem+json

req POST /cache "{\"key\":\"a/b\",\"value\":1}"
expect "identifier rule: / refused, named" 422 "must not contain '/'"

req POST /users "{\"user_id\":\"$RUN\",\"name\":\"Smoke Test\",\"email\":\"smoke@example.com\",\"age\":30}"
expect "POST /users" 201
req GET "/users/$RUN?fields=name,email"
expect "GET /users/{id}?fields=" 200 '"name":"Smoke Test"'
req PATCH "/users/$RUN" '{"city":"Oslo"}'
expect "PATCH /users/{id}" 200 '"city":"Oslo"'
req DELETE "/users/$RUN"
expect "DELETE /users/{id}" 200

req GET "/rate-limit/check?user_id=$RUN&limit=10&window=60"
expect "GET /rate-limit/check" 200 '"allowed":true'
expect_header "RateLimit-Limit" ratelimit-limit 10
expect_header "RateLimit-Remaining" ratelimit-remaining 9

req POST "/lock/$RUN/acquire?ttl=30"
expect "POST /lock/{resource}/acquire" 201 '"token"'
TOKEN="$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$TMP/body")"
req POST "/lock/$RUN/acquire?ttl=30"
expect "a held lock: 409" 409
req POST "/lock/$RUN/release" "{\"token\":\"$TOKEN\"}"
expect "POST /lock/{resource}/release" 200

req POST "/queue/$RUN" '{"id":"t1","title":"Send email","priority":"high"}'
expect "POST /queue/{name}" 201 '"queue_length":1'
req HEAD "/queue/$RUN"
expect "HEAD on a pop: 405, nothing popped" 405
expect_header "405 names the methods" allow GET
req GET "/queue/$RUN"
expect "GET /queue/{name} pops" 200 '"id":"t1"'
req GET "/queue/$RUN"
expect "an empty queue: 404 problem" 404 '"status":404'

req GET /stats
expect "GET /stats" 200 '"connected":true'
req GET /openapi.json "" --no-key
expect "GET /openapi.json (public)" 200 '"openapi"'

if [ "$FAILED" -ne 0 ]; then
  echo "==> smoke test FAILED against $BASE"
  exit 1
fi
echo "==> smoke test passed against $BASE"
