#!/usr/bin/env bash
# `kwctl bench` of the policy and of the SDK-style peer on the same opted-in pod, the same
# replayed ServiceAccount read and the same settings, alternating ROUNDS times; prints the
# medians of the means and their ratio. Usage: kwctl-bench.sh POLICY PEER
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

# kwctl replays each recorded exchange once: with the one-exchange session every iteration
# after the first would get "the list of recorded responses is empty" and measure the
# policy's failure path. The session is repeated for more iterations than a run can make.
# Doubled DOUBLINGS times: 2^16 exchanges, one per 46 µs of a 3-second run.
DOUBLINGS=${DOUBLINGS:-16}
cp examples/session.yml "$out/session.yml"
for _ in $(seq "$DOUBLINGS"); do
	cat "$out/session.yml" "$out/session.yml" >"$out/twice.yml"
	mv "$out/twice.yml" "$out/session.yml"
done

"$KWCTL" annotate -m bench/peer/metadata.yml -o "$out/peer.wasm" "$peer" >/dev/null
"$KWCTL" annotate -m policy-metadata.yml -u README.md -o "$out/policy.wasm" "$policy" >/dev/null

# Mean of `validate`, in microseconds; fails if the session ran out.
mean() {
	"$KWCTL" bench --num-samples "$SAMPLES" --warm-up-time 1 --measurement-time 2 \
		--allow-context-aware --request-path examples/admission-request.json \
		--settings-path examples/settings.yaml \
		--replay-host-capabilities-interactions "$out/session.yml" "$1" 2>"$out/stderr" >"$out/stdout"
	if grep -q 'recorded responses is empty' "$out/stderr"; then
		echo "kwctl bench ran out of replayed exchanges: raise DOUBLINGS (now $DOUBLINGS)" >&2
		exit 1
	fi
	sed 's/\x1b\[[0-9;]*m//g' "$out/stdout" | grep -A1 '^validate \[' | grep elapsed |
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
