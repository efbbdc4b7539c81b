#!/usr/bin/env bash
# Make Debian's Chromium available for the browser test (tests/browser), best effort: without it
# that test is skipped with the reason, so a failure here never fails the caller.
#   PLANE_CHROMIUM                the browser to use (default /usr/bin/chromium)
#   PLANE_SKIP_CHROMIUM_INSTALL=1 never install anything
set -uo pipefail
# shellcheck source=scripts/apt_install.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"
chromium=${PLANE_CHROMIUM:-/usr/bin/chromium}
if [ -x "$chromium" ]; then
  exit 0
fi
if ! apt_install chromium chromium PLANE_SKIP_CHROMIUM_INSTALL; then
  echo "chromium: the browser test is skipped"
  exit 0
fi
if [ -x "$chromium" ]; then
  echo "chromium: $("$chromium" --version 2>/dev/null || echo installed)"
else
  echo "chromium: installed, but not at $chromium (set PLANE_CHROMIUM); the browser test is skipped"
fi
exit 0
