#!/usr/bin/env bash
# Installs the Python tools of the API tests (tests/api/requirements.txt:
# openapi-spec-validator) into a venv, ${SENTRYK8S_TOOLS:-.tools}/api-venv,
# and prints the validator's path. Idempotent and quick: the venv is
# rebuilt only when the requirements change. The integration test
# web_openapi finds the validator there (or through
# OPENAPI_SPEC_VALIDATOR) and fails, naming this script, without it.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="${SENTRYK8S_TOOLS:-$PWD/.tools}"
venv=$tools/api-venv
if [ ! -x "$venv/bin/openapi-spec-validator" ] || ! cmp -s tests/api/requirements.txt "$venv/requirements.txt"; then
  echo "tests/api: installing openapi-spec-validator into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/api/requirements.txt
  cp tests/api/requirements.txt "$venv/requirements.txt"
fi
echo "$venv/bin/openapi-spec-validator"
