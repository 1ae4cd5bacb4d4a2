#!/usr/bin/env bash
# Installs what the cross-language interoperability tests need: pyzmq for Debian's python3.
# Where it cannot be installed (not root, no apt-get), the interop tests skip with a message.
set -uo pipefail
if /usr/bin/python3 -c 'import zmq' >/dev/null 2>&1; then
  echo "python3-zmq present: $(/usr/bin/python3 -c 'import zmq; print("pyzmq", zmq.__version__, "libzmq", zmq.zmq_version())')"
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "python3-zmq not installed and cannot be installed here (needs root and apt-get): interop tests will be skipped"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q python3-zmq >/dev/null 2>&1; then
  apt-get update -q >/dev/null 2>&1 || true
  apt-get install -y -q python3-zmq >/dev/null || { echo "could not install python3-zmq" >&2; exit 1; }
fi
/usr/bin/python3 -c 'import zmq; print("installed pyzmq", zmq.__version__, "libzmq", zmq.zmq_version())'
