#!/usr/bin/env bash
# Makes sure Chromium and ChromeDriver are installed for the browser tests (tests/browser):
# reuses installed ones, else installs Debian's `chromium` and `chromium-driver` (as root with
# apt), else says exactly what to install. The tests fail, never skip, without them.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}

say() { printf 'browser: %s\n' "$*" >&2; }

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
  say "Chromium and ChromeDriver are installed"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing chromium and chromium-driver from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  exit 0
fi
say "the browser tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver (or set CHROMIUM and CHROMEDRIVER)"
exit 1
