#!/bin/sh
# Runs the test suite on a fresh Debian machine as it is: installs the system tools the
# tests use when they are missing (apt-get; sudo when not root), then runs
# `cargo test --workspace` with any arguments given.
#
#   ./test.sh                          everything
#   ./test.sh --test usage             arguments go to cargo test
#   ./test.sh -- --nocapture           ... and after --, to the test binaries
set -eu
cd "$(dirname "$0")"

missing=""

# need PROBE PACKAGE...: the Debian packages to install unless PROBE is found, PROBE being
# a command on PATH or, starting with /, a path pattern (for tools kept off PATH).
need() {
    probe=$1
    shift
    case "$probe" in
        /*)
            for path in $probe; do
                [ -e "$path" ] && return 0
            done
            ;;
        *) command -v "$probe" >/dev/null 2>&1 && return 0 ;;
    esac
    missing="$missing $*"
}

# What the tests use beyond cargo, one line each.
need git git       # every end-to-end test runs real git in temp repositories (and the hooks)
need age age       # the team-key tests decrypt with the stock age tool, not our code
need strace strace # the syscall-order test traces the CLI's atomic write
need script bsdutils # the prompt tests drive a pty through script(1)
need setpriv util-linux # the agent test tries its socket as another user
need perl perl-base # ... with a raw Unix-socket client
need man man-db     # the manual-page tests render every page with man --warnings (groff)
need zsh zsh         # the completion test runs zsh's branch function from our script
need fish fish       # ... and completes branch names in a real fish
# Later features add theirs here, e.g.:
need '/usr/lib/postgresql/*/bin/initdb' postgresql # the PostgreSQL store's tests start a throwaway cluster (initdb, pg_ctl)
need chromedriver chromium chromium-driver             # the dashboard tests drive a real headless Chromium

if [ -n "$missing" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: the tests need these Debian packages or their equivalents:$missing" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: installing$missing needs root, and sudo is not on PATH" >&2
            echo "hint: run as root, or install them first: apt-get install$missing" >&2
            exit 1
        fi
        sudo=sudo
    fi
    echo "test.sh: installing$missing" >&2
    # The package lists are refreshed only when an install fails on stale ones.
    # shellcheck disable=SC2086 # one word per package
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null 2>&1 ||
        {
            $sudo apt-get update -q >/dev/null &&
                $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
        }
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is required but not on PATH" >&2
    echo "hint: install Rust from https://rustup.rs" >&2
    exit 1
fi
exec cargo test --workspace "$@"
