#!/usr/bin/env bash
# Smoke-test the gateway with a second, independent MCP client: the MCP Inspector CLI (TypeScript SDK,
# the same client stack as Claude Desktop and VS Code). Needs Node.js >= 20 and npm; installs the
# Inspector into a temporary directory and runs the gateway over stdio against its embedded sandbox.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
gw="$here/.venv/bin/mcp-gateway"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export npm_config_cache="$tmp/npm" HOME="$tmp" MCP_CATALOG_PATH="$tmp/catalog.json" MCP_CLIENT_CONFIG_PATH="$tmp/client.json"
(cd "$tmp" && npm install --silent --no-audit --no-fund @modelcontextprotocol/inspector@2.12.0 >/dev/null 2>&1)
insp="$tmp/node_modules/.bin/mcp-inspector"

run() { "$insp" --cli "$gw" serve --sandbox "$@" --format json 2>/dev/null || true; }

echo "tools/list:"; run --method tools/list | python3 -c 'import json,sys; print(" ", len(json.load(sys.stdin)["result"]["tools"]), "tools")'
for era in legacy modern; do
  echo "orders_get 200001 ($era):"
  run --protocol-era "$era" --method tools/call --tool-name orders_get --tool-args-json '{"order_id":"200001"}' \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print("  ok, order", r["structuredContent"]["order"]["id"])'
  echo "orders_get 999999 ($era):"
  run --protocol-era "$era" --method tools/call --tool-name orders_get --tool-args-json '{"order_id":"999999"}' \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print("  isError", r["isError"], r["_meta"]["mcp-gateway/error"]["code"])'
done
