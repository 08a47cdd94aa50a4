#!/usr/bin/env bash
# The test command (README): formatting, vet, and every test with the race
# detector. Tests that need a part this machine lacks (bubblewrap, python3,
# chromium, the agent CLIs) skip with a message; .ci/run installs them all.
# The last line counts the skipped tests by reason (scripts/testsum); the
# exit status is go test's.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
    echo "gofmt would change:" $unformatted >&2
    exit 1
fi
go vet ./...
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/testsum" ./scripts/testsum
go test -race -count=1 -timeout 30m -json "$@" ./... | "$tmp/testsum"
