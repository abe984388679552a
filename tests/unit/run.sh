#!/usr/bin/env bash
# Runs each unit-test binary and prints one total line: "unit: N passed, N failed".
set -u
passed=0 failed=0 status=0
for t in "$@"; do
	out=$("$t") || status=1
	echo "$out"
	line=$(echo "$out" | grep -Eo '[0-9]+ passed, [0-9]+ failed' | tail -1)
	if [ -z "$line" ]; then
		echo "$t: crashed or printed no result"
		failed=$((failed + 1)) status=1
		continue
	fi
	passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
	failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
done
echo "unit: $passed passed, $failed failed"
exit $status
