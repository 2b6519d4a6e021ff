#!/usr/bin/env bash
# The browser for the one test that needs it: tests/serving/test_web_page.py drives Debian's
# chromium through its chromedriver. Only `make test` runs this (never `make demo` or
# scripts/install.sh). As root with apt-get, it installs chromium + chromium-driver when
# /usr/bin/chromedriver is missing; anywhere else (or if apt fails) that test skips with a reason.
set -uo pipefail
if [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] no /usr/bin/chromedriver and not root with apt-get: tests/serving/test_web_page.py will skip" >&2
  exit 0
fi
echo "[browser] installing chromium + chromium-driver for the web page test (apt-get, quiet)"
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1; then
  echo "[browser] warning: could not install chromium/chromium-driver; tests/serving/test_web_page.py will skip" >&2
fi
exit 0
