#!/usr/bin/env bash
# Make Debian's Chromium available for the browser test (tests/browser), best effort: without it
# that test is skipped with the reason, so a failure here never fails the caller.
#   PLANE_CHROMIUM                the browser to use (default /usr/bin/chromium)
#   PLANE_SKIP_CHROMIUM_INSTALL=1 never install anything
set -uo pipefail
chromium=${PLANE_CHROMIUM:-/usr/bin/chromium}
if [ -x "$chromium" ]; then
  exit 0
fi
if [ "${PLANE_SKIP_CHROMIUM_INSTALL:-0}" = "1" ]; then
  echo "chromium: $chromium missing and PLANE_SKIP_CHROMIUM_INSTALL=1; the browser test is skipped"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: $chromium missing and no apt-get here; the browser test is skipped"
  exit 0
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "chromium: $chromium missing and apt-get needs root; the browser test is skipped"
    exit 0
  fi
fi
apt() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get "$@" >/dev/null 2>&1; }
echo "chromium: installing Debian's chromium package (apt-get install -y chromium)"
if ! apt install -y -qq chromium; then
  apt update -qq || true  # a fresh machine may have no package lists yet
  if ! apt install -y -qq chromium; then
    echo "chromium: apt-get install chromium failed; the browser test is skipped"
    exit 0
  fi
fi
if [ -x "$chromium" ]; then
  echo "chromium: $("$chromium" --version 2>/dev/null || echo installed)"
else
  echo "chromium: installed, but not at $chromium (set PLANE_CHROMIUM); the browser test is skipped"
fi
exit 0
