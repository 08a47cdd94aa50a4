#!/usr/bin/env bash
# The test command (README): formatting, vet, and every test with the race
# detector. Tests that need a part this machine lacks (bubblewrap, python3,
# chromium, the agent CLIs) skip with a message; .ci/run installs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
    echo "gofmt would change:" $unformatted >&2
    exit 1
fi
go vet ./...
go test -race -count=1 -timeout 30m "$@" ./...
