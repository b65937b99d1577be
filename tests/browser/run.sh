#!/usr/bin/env bash
# Real-browser tests: Debian's Chromium, driven by playwright-core, against the real ignis-server
# and ignis-chat.
# Needs target/debug/ignis-server and target/debug/ignis-chat (or IGNIS_SERVER_BIN, IGNIS_CHAT_BIN)
# built beforehand. Installs Chromium with apt-get when it is missing (run as root in CI); never
# downloads a Playwright browser.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM_BIN" ]]; then
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "Chromium is missing at $CHROMIUM_BIN; install it with: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
"$CHROMIUM_BIN" --version 2>/dev/null | head -n 1

# playwright-core never downloads a browser on install; this keeps it so for anything else.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund
npm test
