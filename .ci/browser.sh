#!/usr/bin/env bash
# The web app in a real browser: Debian's chromium + chromium-driver (installed
# when missing; no browser is downloaded at run time), Selenium from PyPI in a
# throwaway venv (pointed at /usr/bin/chromedriver, so Selenium Manager never
# fetches anything), axe-core from npm into a temp folder, injected by the test.
# Usage: .ci/browser.sh [SLUICE_BINARY]   (default: target/release/sluice)
# Writes the screenshots to docs/screenshots/ (the README shows them).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/sluice}"
start=$SECONDS

# Only what is missing; fonts-nanum is a Hangul font, so the Korean screenshots
# show Korean rather than empty boxes.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v npm >/dev/null || missing+=(npm)
[ -n "$(fc-list 2>/dev/null | grep -i nanum || true)" ] || missing+=(fonts-nanum)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv="${TMPDIR:-/tmp}/sluice-browser-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==4.*"

axe_dir="${TMPDIR:-/tmp}/sluice-axe"
if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]; then
    mkdir -p "$axe_dir"
    (cd "$axe_dir" && npm install --silent --no-audit --no-fund --no-save axe-core@4)
fi

# Selenium Manager must not run: the driver path is given, and this says so twice.
export SE_OFFLINE=true
timeout 300 "$venv/bin/python" tests/browser/test_web.py "$bin" "$axe_dir/node_modules/axe-core/axe.min.js"
timeout 300 "$venv/bin/python" tests/browser/test_dashboard.py "$bin" "$axe_dir/node_modules/axe-core/axe.min.js"
echo "browser tests: $((SECONDS - start)) s"
