#!/bin/sh
# Runs every fuzz target (or the ones named) for a bounded time, one after the other.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET…]     (default: 60 s each, all targets)
#
# Each run starts from the committed corpus (corpus/<target>/), plus the repository's
# fixtures for the .env extractor, and adds what it finds to that corpus; a crash stops
# the run with a non-zero exit and leaves the input in artifacts/<target>/. To shrink the
# corpus again before committing it: cargo fuzz cmin <target> corpus/<target>
set -eu
cd "$(dirname "$0")"

secs="${1:-60}"
[ "$#" -gt 0 ] && shift
targets="${*:-envfile envelope names}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "error: cargo-fuzz is not installed" >&2
    echo "hint: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
# cargo fuzz builds with sanitizer flags that only a nightly compiler accepts; a stable
# toolchain accepts them too when told it may (the toolchain here is stable only).
export RUSTC_BOOTSTRAP=1

for target in $targets; do
    case "$target" in
        envfile) seeds="../fixtures/dotenv" ;;
        *) seeds="" ;;
    esac
    mkdir -p "corpus/$target"
    echo "== $target: ${secs}s"
    # shellcheck disable=SC2086 # $seeds is a list of directories
    cargo fuzz run "$target" "corpus/$target" $seeds -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
