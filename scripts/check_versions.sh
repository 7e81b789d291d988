#!/usr/bin/env bash
# The release's one version, or why there is none. Cargo.toml's package
# version, the chart's version and appVersion (helm/sentryk8s/Chart.yaml)
# and, when given, the tag (vX.Y.Z) must all be the same X.Y.Z: the image is
# published as that tag, the chart is pushed as that version, and the chart
# deploys the image tagged appVersion. The release workflow runs this first
# and publishes nothing when they disagree.
#
#   scripts/check_versions.sh [TAG]   # prints the version; exits 1 naming every value when they differ
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "check_versions.sh: $1" >&2
  # A GitHub Actions annotation, shown on the run's summary (one line: %0A is its newline).
  if [ "${GITHUB_ACTIONS:-}" = true ]; then echo "::error::${1//$'\n'/%0A}" >&2; fi
  exit 1
}

# Cargo.toml: the version of the [package] table (not a dependency's).
cargo=$(awk '
  /^[[:space:]]*\[/ { in_package = ($0 ~ /^[[:space:]]*\[package\][[:space:]]*(#.*)?$/); next }
  in_package && /^[[:space:]]*version[[:space:]]*=/ {
    if (match($0, /"[^"]*"/)) print substr($0, RSTART + 1, RLENGTH - 2)
    exit
  }' Cargo.toml)

# Chart.yaml: a top-level scalar, quoted or not, comment dropped.
chart_value() {
  awk -v key="$1" '
    index($0, key ":") == 1 {
      v = substr($0, length(key) + 2)
      sub(/[[:space:]]+#.*$/, "", v)
      gsub(/^[[:space:]]+|[[:space:]]+$/, "", v)
      gsub(/^["\047]|["\047]$/, "", v)
      print v
      exit
    }' helm/sentryk8s/Chart.yaml
}
chart_version=$(chart_value version)
app_version=$(chart_value appVersion)

semver='^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'
tag=${1:-}
if [ -n "$tag" ] && ! [[ $tag =~ ^v && ${tag#v} =~ $semver ]]; then
  fail "tag '$tag' is not vMAJOR.MINOR.PATCH (e.g. v1.2.3)"
fi
version=${tag#v}
version=${version:-$cargo}

table=$(printf '  %-38s %s\n' \
  "tag" "${tag:-(none given)}" \
  "Cargo.toml [package] version" "${cargo:-(missing)}" \
  "helm/sentryk8s/Chart.yaml version" "${chart_version:-(missing)}" \
  "helm/sentryk8s/Chart.yaml appVersion" "${app_version:-(missing)}")
if ! [[ $version =~ $semver ]] || [ "$cargo" != "$version" ] ||
  [ "$chart_version" != "$version" ] || [ "$app_version" != "$version" ]; then
  fail "the versions disagree; bump them together:
$table"
fi
echo "$version"
