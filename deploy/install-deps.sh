#!/usr/bin/env bash
# Installs the Debian packages Touchpoint builds, runs and tests with.
# Idempotent: does nothing when everything is already present.
#   install-deps.sh            everything: build, run, test (make, CI)
#   install-deps.sh build      what compiling needs (a container's build stage)
#   install-deps.sh runtime    only the shared libraries the binaries load
#                              (a container's runtime stage, deploy/container)
set -euo pipefail
what=${1:-all}

BUILD_PKGS="build-essential cmake pkg-config libzmq3-dev libuv1-dev libmsgpack-dev
  libhiredis-dev node-llhttp libcurl4-openssl-dev libcmocka-dev libical-dev
  libinih-dev libjansson-dev libsodium-dev uthash-dev clang libclang-rt-14-dev"
RUN_PKGS="redis-server redis-tools curl python3 procps tzdata"
# the notifier's tests send real mail: postfix for its smtp-sink, aiosmtpd
# (run by Debian's python3) and openssl for a server that insists on STARTTLS
# deploy tests: manifests parsed with python3-yaml, checked with python3-jsonschema
# against the pinned schemas in tests/deploy; systemd-analyze for the units
TEST_PKGS="postfix python3-aiosmtpd openssl python3-yaml python3-jsonschema systemd
  iproute2"
# the libraries the services link, for a machine that only runs them
RUNTIME_PKGS="libzmq5 libuv1 libhiredis0.14 libmsgpackc2 libcurl4 libical3 libinih1
  libjansson4 libsodium23 ca-certificates tzdata"

case $what in
  all) want="$BUILD_PKGS $RUN_PKGS $TEST_PKGS" ;;
  build) want="$BUILD_PKGS" ;;
  runtime) want="$RUNTIME_PKGS" ;;
  *) echo "usage: install-deps.sh [all|build|runtime]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
  exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# postfix asks how to route mail; Touchpoint needs no system mailer at all
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The Debian package starts a system redis on 6379; Touchpoint runs its own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now postfix >/dev/null 2>&1 || true; fi
