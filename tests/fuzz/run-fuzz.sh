#!/bin/sh
# run-fuzz.sh TARGET SEEDS WORKDIR SECONDS [libFuzzer flag...]
# Run one libFuzzer target for SECONDS, starting from the checked-in SEEDS
# (only read) and WORKDIR/corpus (where libFuzzer keeps what it finds).
# Crash inputs land in WORKDIR/artifacts; the exit status is libFuzzer's:
# 0 when the time ran out with no finding.
set -eu
if [ $# -lt 4 ]; then
	echo "usage: $0 TARGET SEEDS WORKDIR SECONDS [libFuzzer flag...]" >&2
	exit 2
fi
target=$1 seeds=$2 work=$3 seconds=$4
shift 4
mkdir -p "$work/corpus" "$work/artifacts"
exec "$target" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds"
