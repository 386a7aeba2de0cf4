#!/usr/bin/env bash
# tests/fuzz/run_regressions.sh — run each fuzzer once over fixed inputs: its seeds and
# the reproducers of crashes found and fixed (tests/fuzz/crashes/<target>/). Each
# argument is FUZZER=DIR[:DIR...]; missing directories are skipped. Exit 1 if any input
# crashes (the fuzzer prints the report).
set -uo pipefail
status=0
for arg in "$@"; do
  fuzzer=${arg%%=*}
  IFS=: read -r -a dirs <<<"${arg#*=}"
  files=()
  for d in "${dirs[@]}"; do
    [[ -d $d ]] && while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$d" -type f -print0 | sort -z)
  done
  name=$(basename "$fuzzer")
  if ((${#files[@]} == 0)); then echo "$name: no inputs"; continue; fi
  log=$(mktemp)
  if "$fuzzer" -rss_limit_mb=3072 -timeout=30 "${files[@]}" >"$log" 2>&1; then
    echo "$name: ${#files[@]} inputs, all clean"
  else
    echo "$name: FAILED on one of ${#files[@]} inputs:"
    tail -n 60 "$log"
    status=1
  fi
  rm -f "$log"
done
exit $status
