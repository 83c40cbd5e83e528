#!/bin/sh
# Builds and installs git-envsync and envsync-server with cargo.
#
#   ./install.sh            install both binaries into $PREFIX/bin (PREFIX defaults to ~/.cargo)
#   ./install.sh --hooks    also install the git hooks in the current repository
#
# Running it again reinstalls the same binaries and leaves the hooks as they are.
set -eu

usage() {
    echo "usage: ./install.sh [--hooks] [--prefix DIR]" >&2
    exit 2
}

hooks=no
prefix=${PREFIX:-$HOME/.cargo}
while [ $# -gt 0 ]; do
    case "$1" in
        --hooks) hooks=yes ;;
        --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) usage ;;
    esac
    shift
done

for tool in cargo git; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is required but not on PATH" >&2
        [ "$tool" = cargo ] && echo "hint: install Rust from https://rustup.rs" >&2
        exit 1
    fi
done

src=$(cd "$(dirname "$0")" && pwd)
here=$(pwd)
cd "$src"
for pkg in git-envsync envsync-server; do
    dir=$pkg
    [ "$pkg" = envsync-server ] && dir=server
    echo "installing $pkg into $prefix/bin" >&2
    cargo install --quiet --locked --force --root "$prefix" --path "$dir"
done

case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: add $prefix/bin to PATH so git finds 'git envsync'" >&2 ;;
esac

if [ "$hooks" = yes ]; then
    cd "$here"
    PATH="$prefix/bin:$PATH" git-envsync hooks install
fi

cat >&2 <<MSG
done. To uninstall:
  git envsync hooks uninstall      # in each repository where hooks were installed
  cargo uninstall --root "$prefix" git-envsync envsync-server
MSG
