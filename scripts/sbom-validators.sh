#!/usr/bin/env bash
# Installs the SBOM reference validators from PyPI (spdx-tools: `pyspdxtools`;
# cyclonedx-python-lib: its JSON schema validator) into a venv, once, and prints the venv's
# bin directory. Used by crates/sbom/tests. Idempotent and quiet when already installed.
set -euo pipefail
VENV=${WHITTLE_SBOM_VENV:-/var/cache/whittle-test/sbom-venv}
if [ ! -x "$VENV/bin/pyspdxtools" ] || ! "$VENV/bin/python" -c 'import cyclonedx.validation.json, jsonschema' 2>/dev/null; then
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q spdx-tools cyclonedx-python-lib jsonschema >&2
fi
echo "$VENV/bin"
