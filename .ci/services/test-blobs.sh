#!/usr/bin/env bash
# Runs the io/blobs conformance suite against every backend: mem, file,
# S3 (gofakes3) and GCS (fake-gcs-server) in-process, Azure on the Azurite
# this script starts. CI=true makes a missing Azurite a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(.ci/services/azurite.sh)"
trap '.ci/services/azurite.sh stop' EXIT
CI=true go test -race -count=1 ./io/blobs/... "$@"
