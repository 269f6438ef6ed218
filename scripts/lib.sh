# shellcheck shell=bash
# Shared by the scripts: --help, --version and usage errors, finding the
# binaries, reading what the scripts need, and the store flags. Bash never
# parses the config file or a JSON record: mb-config does, and prints one
# value a line, read here with mapfile (never eval). Secrets are never read
# here: the stages read them from the config file themselves.

prog=${prog:-mb}
# Sourced without arguments, this file sees the script's: a first one that
# is not a CONFIG goes to answer_usage.
# shellcheck disable=SC2034 # read by the scripts' usage()
first_arg=${1-}

die() {
    echo "$prog: $*" >&2
    exit 1
}

# answer_usage ARG EXAMPLES: a script's answer to an argument it does not
# take as an option: --help prints the comment block at the top of the
# script (its one usage text) and EXAMPLES on stdout, exit 0; --version
# prints the version and commit the mb-* binaries were built from, exit 0;
# anything else is a usage error naming ARG on one line, exit 2.
answer_usage() {
    local arg=$1 examples=$2 line
    case $arg in
        -h | --help)
            sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "${BASH_SOURCE[-1]}"
            printf '\n%s\n' "$examples"
            exit 0
            ;;
        --version)
            line=$("$(find_bin_dir)/mb-config" --version) || exit 1
            echo "$prog ${line#* }"
            exit 0
            ;;
        '') echo "$prog: missing CONFIG (see $prog --help)" >&2 ;;
        *) echo "$prog: unexpected argument '$arg' (see $prog --help)" >&2 ;;
    esac
    exit 2
}

# The directory holding the mb-* binaries: $MB_BIN_DIR, else PATH, else this
# checkout's target/release.
find_bin_dir() {
    local here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    if [[ -n ${MB_BIN_DIR:-} ]]; then
        echo "$MB_BIN_DIR"
    elif command -v mb-dump >/dev/null 2>&1; then
        dirname "$(command -v mb-dump)"
    elif [[ -x $here/../target/release/mb-dump ]]; then
        echo "$here/../target/release"
    else
        die "the mb-* binaries are not on PATH: run 'cargo install --path .' or set MB_BIN_DIR"
    fi
}

# lines VAR COMMAND...: COMMAND's stdout, one array element per line, into
# VAR. A failing COMMAND ends the script with its status (its own error line
# is already on stderr). The `.` keeps trailing empty lines from being cut
# by the command substitution (`wait` on a process substitution is racy).
lines() {
    local -n _lines_into=$1
    local _lines_out
    shift
    _lines_out=$("$@" && echo .) || exit
    mapfile -t _lines_into < <(printf '%s' "${_lines_out%.}")
}

# is_off VALUE: whether a config flag is off (0, false, no, off).
is_off() {
    [[ ${1,,} == @(0|false|no|off) ]]
}

# store_args CONFIG UPLOAD BUCKET ROOT: the mb-oss-put/get/rm flags for
# where backups live: OSS from the config (is_upload_to_oss=1, the default),
# or a local directory store under ROOT/store (is_upload_to_oss=0).
store_args() {
    local config=$1 upload=$2 bucket=$3 root=$4
    if is_off "$upload"; then
        printf '%s\n' --store-dir "$root/store" --bucket "$bucket"
    else
        printf '%s\n' --config "$config"
    fi
}

# prune KEEP_CYCLES MIN_AGE [FLAG...]: mb-oss-rm --prune under the chain's
# prefix (needs $bin, $root, the `store` and `prefix` arrays). KEEP_CYCLES
# empty or 0: no cycle is deleted, only old leftovers.
# shellcheck disable=SC2154 # bin, store, prefix, root: set by the caller
prune() {
    local keep=$1 min_age=$2 keep_flag=()
    shift 2
    [[ -n $keep && $keep != 0 ]] && keep_flag=(--keep-cycles "$keep")
    "$bin/mb-oss-rm" -q "${store[@]}" --prefix "${prefix[0]}/" --prune "${keep_flag[@]}" \
        --state "$root/state.json" --min-age "$min_age" "$@"
}
