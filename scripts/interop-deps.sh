#!/usr/bin/env bash
# Installs what some tests need beyond Node.js: pyzmq for Debian's python3 (the cross-language
# interoperability tests) and the iproute2 `ip` command (the Binary Star network-partition test).
# Where something cannot be installed (not root, no apt-get), the tests that need it are skipped
# and say why; only a failed install where one is possible fails this script.
set -uo pipefail

can_install() { [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >/dev/null 2>&1 && return 0
  apt-get update -q >/dev/null 2>&1 || true
  apt-get install -y -q "$@" >/dev/null
}

status=0

if /usr/bin/python3 -c 'import zmq' >/dev/null 2>&1; then
  echo "python3-zmq present: $(/usr/bin/python3 -c 'import zmq; print("pyzmq", zmq.__version__, "libzmq", zmq.zmq_version())')"
elif ! can_install; then
  echo "python3-zmq not installed and cannot be installed here (needs root and apt-get): interop tests will be skipped"
elif apt_install python3-zmq; then
  /usr/bin/python3 -c 'import zmq; print("installed pyzmq", zmq.__version__, "libzmq", zmq.zmq_version())'
else
  echo "could not install python3-zmq" >&2
  status=1
fi

if command -v ip >/dev/null 2>&1; then
  echo "ip present: $(ip -V 2>&1 | head -n 1)"
elif ! can_install; then
  echo "ip (iproute2) not installed and cannot be installed here: the partition test will be skipped"
elif apt_install iproute2; then
  echo "installed $(ip -V 2>&1 | head -n 1)"
else
  echo "could not install iproute2" >&2
  status=1
fi

exit "$status"
