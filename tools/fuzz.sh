#!/usr/bin/env bash
# Runs every fuzz target in the repository, one after another, each for
# FUZZTIME (a count such as 500000x, or a duration; default 500000x).
# The targets are found, not listed by hand: packages with a
# `func Fuzz...` in a _test.go file, then `go test -list` in each, so a new
# fuzz target is picked up without editing anything.
# Usage: tools/fuzz.sh [--list]   (--list prints package:Target and exits)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-500000x}

targets=()
for dir in $(grep -rlE --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata --exclude-dir=vendor \
	'^func Fuzz[A-Z0-9_]' . | xargs -r -n1 dirname | sort -u); do
	names=$("$GO" test -list '^Fuzz' "$dir")
	for name in $(printf '%s\n' "$names" | grep -E '^Fuzz' || true); do
		targets+=("$dir:$name")
	done
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
if [ "${1:-}" = "--list" ]; then
	printf '%s\n' "${targets[@]}"
	exit 0
fi
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each"
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t##*:}
	echo "== $pkg $name ($FUZZTIME)"
	"$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg"
done
