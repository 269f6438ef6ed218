# shellcheck shell=bash
# Shared by mb-backup, mb-restore and demo: finding the binaries, reading
# non-secret config keys, and the store flags. Secrets are never read here:
# the stages read them from the config file themselves.

prog=${prog:-mb}

die() {
    echo "$prog: $*" >&2
    exit 1
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

# conf FILE KEY [DEFAULT]: the last value of KEY in an INI-style config.
conf() {
    local value
    value=$(sed -n -E "s/^[[:space:]]*$2[[:space:]]*[=:][[:space:]]*//p" "$1" | tail -n 1 | sed -E 's/[[:space:]]+$//')
    value=${value#\"}
    value=${value%\"}
    value=${value#\'}
    value=${value%\'}
    echo "${value:-${3:-}}"
}

# json_field FILE NAME: a string or number field of a one-line JSON record.
json_field() {
    sed -n -E "s/.*\"$2\":\"?([^\",}]*)\"?.*/\1/p" "$1" | head -n 1
}

# store_args CONFIG ROOT: the mb-oss-put/get flags for where backups live:
# OSS from the config (is_upload_to_oss=1, the default), or a local directory
# store under ROOT/store (is_upload_to_oss=0).
store_args() {
    local config=$1 root=$2
    if [[ $(conf "$config" is_upload_to_oss 1) == 0 ]]; then
        printf '%s\n' --store-dir "$root/store" --bucket "$(conf "$config" bucket backups)"
    else
        printf '%s\n' --config "$config"
    fi
}
