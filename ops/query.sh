#!/usr/bin/env bash
# Runs one of ops/queries/*.sql (or any SQL file) against Workers Analytics Engine's SQL API for
# your account, and prints the answer as JSON. docs/OPERATIONS.md, "Metrics".
#
#   CLOUDFLARE_ACCOUNT_ID=… CLOUDFLARE_API_TOKEN=… ops/query.sh refusals-by-code
#
# The token needs the permission "Account | Account Analytics | Read". Not run by the tests: it
# needs a deployed gateway and an account.
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 <query name in ops/queries, or a .sql file>" >&2
  ls "$(dirname "$0")/queries" | sed 's/\.sql$//; s/^/  /' >&2
  exit 2
fi
: "${CLOUDFLARE_ACCOUNT_ID:?set CLOUDFLARE_ACCOUNT_ID}"
: "${CLOUDFLARE_API_TOKEN:?set CLOUDFLARE_API_TOKEN}"
file="$1"
[[ -f "$file" ]] || file="$(dirname "$0")/queries/$1.sql"
[[ -f "$file" ]] || { echo "no such query: $1" >&2; exit 2; }
# Comments are dropped (the API takes one statement); FORMAT JSON for a readable answer.
sql="$(grep -v '^[[:space:]]*--' "$file") FORMAT JSON"
curl --silent --show-error --fail-with-body -X POST \
  "https://api.cloudflare.com/client/v4/accounts/${CLOUDFLARE_ACCOUNT_ID}/analytics_engine/sql" \
  -H "Authorization: Bearer ${CLOUDFLARE_API_TOKEN}" \
  --data-binary "$sql"
echo
