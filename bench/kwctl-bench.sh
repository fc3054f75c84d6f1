#!/usr/bin/env bash
# `kwctl bench` of the policy and of the SDK-style peer on the same opted-in pod, the same
# replayed ServiceAccount read and the same settings, alternating ROUNDS times; prints each
# mean and the ratio of the medians of the means. Usage: kwctl-bench.sh POLICY PEER
set -euo pipefail
KWCTL=${KWCTL:-kwctl}
ROUNDS=${ROUNDS:-3}
SAMPLES=${SAMPLES:-50}
policy=$1 peer=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# With RUST_BACKTRACE set, the host captures a backtrace on paths it takes for every host
# call, and the figures measure that instead of the policies.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

"$KWCTL" annotate -m bench/peer/metadata.yml -o "$out/peer.wasm" "$peer" >/dev/null
"$KWCTL" annotate -m policy-metadata.yml -u README.md -o "$out/policy.wasm" "$policy" >/dev/null

# Mean of `validate`, in microseconds.
mean() {
	"$KWCTL" bench --num-samples "$SAMPLES" --warm-up-time 1 --measurement-time 3 \
		--allow-context-aware --request-path examples/admission-request.json \
		--settings-path examples/settings.yaml \
		--replay-host-capabilities-interactions examples/session.yml "$1" 2>/dev/null |
		sed 's/\x1b\[[0-9;]*m//g' | grep -A1 '^validate \[' | grep elapsed |
		sed -n 's/.*\]:[[:space:]]*\[[^ ]* \([0-9.]*\)\([^ ]*\) .*/\1 \2/p' |
		awk '{v = $1; if ($2 == "ns") v /= 1000; else if ($2 == "ms") v *= 1000; print v}'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for _ in $(seq "$ROUNDS"); do
	mean "$out/policy.wasm" >>"$out/policy.txt"
	mean "$out/peer.wasm" >>"$out/peer.txt"
done
p=$(median <"$out/policy.txt") q=$(median <"$out/peer.txt")
echo "| kwctl bench, opted-in pod ($ROUNDS alternating rounds, median of means) | value |"
echo "|---|---:|"
echo "| policy | ${p} µs |"
echo "| SDK-style peer | ${q} µs |"
awk -v p="$p" -v q="$q" 'BEGIN {printf "| policy / peer | %.2fx |\n", p / q}'
