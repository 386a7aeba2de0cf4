#!/usr/bin/env bash
# tests/sanitize/run_tsan.sh — run a ThreadSanitizer binary with address-space
# randomisation off for this process when the system allows it (setarch -R).
# ThreadSanitizer maps its shadow memory at fixed addresses; on kernels that randomise
# mmap with more bits than its layout expects (vm.mmap_rnd_bits = 32 on some recent
# distributions) it stops with "FATAL: ThreadSanitizer: unexpected memory mapping".
# With randomisation off the layout is the classic one and it runs anywhere.
set -euo pipefail
if setarch "$(uname -m)" -R true 2>/dev/null; then
  exec setarch "$(uname -m)" -R "$@"
fi
exec "$@"
