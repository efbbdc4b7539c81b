#!/usr/bin/env bash
# Best-effort install of one Debian package for the tests (sourced by install_chromium.sh and
# install_prometheus.sh): `apt_install WHAT PACKAGE SKIP_VAR` installs PACKAGE with apt-get,
# as root or through password-less sudo, refreshing the package lists once if the first try
# fails; it never fails its caller. It returns 1 (with a line saying why) when nothing was
# installed: SKIP_VAR=1, no apt-get, no root, or apt-get failed. WHAT names the caller in its lines.
apt_install() {
  local what=$1 package=$2 skip_var=$3 sudo=""
  if [ "${!skip_var:-0}" = "1" ]; then
    echo "$what: missing and $skip_var=1; not installed"
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$what: missing and no apt-get here; not installed"
    return 1
  fi
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "$what: missing and apt-get needs root; not installed"
      return 1
    fi
  fi
  echo "$what: installing Debian's $package package (apt-get install -y $package)"
  local apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get)
  if ! "${apt[@]}" install -y -qq --no-install-recommends "$package" >/dev/null 2>&1; then
    "${apt[@]}" update -qq >/dev/null 2>&1 || true  # a fresh machine may have no package lists
    if ! "${apt[@]}" install -y -qq --no-install-recommends "$package" >/dev/null 2>&1; then
      echo "$what: apt-get install $package failed; not installed"
      return 1
    fi
  fi
  return 0
}
