#!/usr/bin/env bash
# tests/fuzz/run_fuzzer.sh — run one softbio libFuzzer target for a fixed time and say
# how it went (the ctest tests fuzz_* run this; so do the long runs of the report).
#
#   run_fuzzer.sh FUZZER SECONDS WORKDIR DICT SEED_DIR... [-- EXTRA_LIBFUZZER_FLAGS...]
#
# The new inputs libFuzzer finds go to WORKDIR/corpus (kept between runs: a later run
# starts from them), crash/timeout/oom reproducers to WORKDIR/artifacts (an earlier run's
# move to WORKDIR/artifacts.previous), the full log to WORKDIR/fuzz.log. The committed
# seeds are read, never written. Exit 0 when the run ended cleanly after SECONDS;
# otherwise 1, with the reproducer and the end of the report printed.
# Reproduce a crash with:  FUZZER path/to/crash-file   (runs that one input).
set -uo pipefail
if (($# < 5)); then
  echo "usage: run_fuzzer.sh FUZZER SECONDS WORKDIR DICT SEED_DIR... [-- FLAGS...]" >&2
  exit 2
fi
fuzzer=$1 seconds=$2 work=$3 dict=$4
shift 4
seeds=() extra=()
while (($#)); do
  if [[ $1 == -- ]]; then shift; extra=("$@"); break; fi
  seeds+=("$1"); shift
done
name=$(basename "$fuzzer")
if [[ ! -x $fuzzer ]]; then
  echo "$name: $fuzzer was not built" >&2
  exit 1
fi
mkdir -p "$work/corpus" "$work/artifacts"
if [[ -n $(ls -A "$work/artifacts") ]]; then  # an earlier run's reproducers: kept aside, not lost
  rm -rf "$work/artifacts.previous" && mv "$work/artifacts" "$work/artifacts.previous" && mkdir "$work/artifacts"
fi
log=$work/fuzz.log
# -timeout: one input taking longer is a finding (a hang). -rss_limit_mb: the decoder
# accepts up to 100 megapixels (300 MB of RGB, more while decoding), ASan adds its own.
# -max_len: the seeds are a few KB; larger inputs only slow the search down.
# -use_value_profile: compares against magic numbers (signatures, lengths) count as progress.
start=$(date +%s)
"$fuzzer" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=3072 -max_len=16384 -use_value_profile=1 \
  -print_final_stats=1 -dict="$dict" -artifact_prefix="$work/artifacts/" "${extra[@]}" \
  "$work/corpus" "${seeds[@]}" >"$log" 2>&1
rc=$?
elapsed=$(($(date +%s) - start))
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
done_line=$(grep -E '^#[0-9]+ +DONE' "$log" | tail -1)
corpus_files=$(find "$work/corpus" -type f | wc -l)
echo "$name: exit $rc after ${elapsed}s; executions $(stat number_of_executed_units), $(stat average_exec_per_sec) exec/s," \
     "new units $(stat new_units_added), peak RSS $(stat peak_rss_mb) MB; corpus $corpus_files files in $work/corpus"
[[ -n $done_line ]] && echo "$name: $done_line"
# Inputs that hit a bug reported and not fixed yet are skipped (tests/fuzz/crashes/README.md).
grep -h "known open bug hit" "$log" | sort -u | sed "s/^/$name: /"
# slow-unit-* files are inputs that took over 10 s (-report_slow_units): kept, not failures.
slow=$(find "$work/artifacts" -type f -name 'slow-unit-*' | wc -l)
((slow)) && echo "$name: $slow slow input(s) (over 10 s each) kept in $work/artifacts"
artifacts=$(find "$work/artifacts" -type f ! -name 'slow-unit-*')
if ((rc != 0)) || [[ -n $artifacts ]]; then
  echo "$name: FAILED. Reproducer(s):"
  for a in $artifacts; do echo "  $a   (run: $fuzzer $a)"; done
  echo "---- end of $log ----"
  tail -n 60 "$log"
  exit 1
fi
exit 0
