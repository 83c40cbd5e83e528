#!/bin/sh
# Builds and installs git-envsync and envsync-server with cargo, with their manual pages
# and shell completions.
#
#   ./install.sh            install into $PREFIX (PREFIX defaults to ~/.cargo):
#                             bin/git-envsync, bin/envsync-server
#                             share/man/man1/git-envsync*.1, envsync-server*.1
#                             share/bash-completion/completions/git-envsync
#                             share/zsh/site-functions/_git-envsync
#                             share/fish/vendor_completions.d/git-envsync.fish
#   ./install.sh --hooks    also install the git hooks in the current repository
#
# Running it again reinstalls the same files and leaves the hooks as they are.
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
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
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
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
cd "$src"
for pkg in git-envsync envsync-server; do
    dir=$pkg
    [ "$pkg" = envsync-server ] && dir=server
    echo "installing $pkg into $prefix/bin" >&2
    cargo install --quiet --locked --force --root "$prefix" --path "$dir"
done

# The pages and scripts come from the installed binaries themselves, so they describe
# exactly the commands and flags those binaries take.
man1=$prefix/share/man/man1
bash_dir=$prefix/share/bash-completion/completions
zsh_dir=$prefix/share/zsh/site-functions
fish_dir=$prefix/share/fish/vendor_completions.d

echo "installing manual pages into $man1" >&2
mkdir -p "$man1"
# Pages of commands that no longer exist go too.
rm -f "$man1"/git-envsync.1 "$man1"/git-envsync-*.1 \
    "$man1"/envsync-server.1 "$man1"/envsync-server-*.1
"$prefix/bin/git-envsync" man --dir "$man1" >/dev/null
"$prefix/bin/envsync-server" man --dir "$man1" >/dev/null

echo "installing completions for bash, zsh and fish" >&2
mkdir -p "$bash_dir" "$zsh_dir" "$fish_dir"
for pair in "bash $bash_dir/git-envsync" "zsh $zsh_dir/_git-envsync" \
    "fish $fish_dir/git-envsync.fish"; do
    shell=${pair%% *}
    file=${pair#* }
    "$prefix/bin/git-envsync" completions "$shell" >"$file.tmp"
    mv "$file.tmp" "$file"
done

case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: add $prefix/bin to PATH so git finds 'git envsync'" >&2 ;;
esac
# man finds share/man beside each bin directory on PATH; say so when it still cannot.
if command -v man >/dev/null 2>&1 &&
    ! PATH="$prefix/bin:$PATH" man -w git-envsync >/dev/null 2>&1; then
    echo "note: add $prefix/share/man to MANPATH so 'git envsync --help' finds its page" >&2
fi
case "$prefix" in
    /usr | /usr/local) ;;
    *)
        echo "note: bash and fish complete 'git envsync' once $prefix/share is in XDG_DATA_DIRS:" >&2
        echo "  export XDG_DATA_DIRS=\"$prefix/share:\${XDG_DATA_DIRS:-/usr/local/share:/usr/share}\"" >&2
        echo "note: zsh completes it once $zsh_dir is in fpath (before compinit)" >&2
        ;;
esac

if [ "$hooks" = yes ]; then
    cd "$here"
    PATH="$prefix/bin:$PATH" git-envsync hooks install
fi

cat >&2 <<MSG
done. To uninstall:
  git envsync hooks uninstall      # in each repository where hooks were installed
  cargo uninstall --root "$prefix" git-envsync envsync-server
  rm -f "$man1"/git-envsync*.1 "$man1"/envsync-server*.1 \\
        "$bash_dir/git-envsync" "$zsh_dir/_git-envsync" "$fish_dir/git-envsync.fish"
MSG
