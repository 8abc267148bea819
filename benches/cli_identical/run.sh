#!/usr/bin/env bash
# Runs every case of a generated corpus with two `sluice` binaries and compares
# their stdout, stderr and exit codes byte for byte (issue 22's acceptance: the
# CLI's output is unchanged by a refactoring).
#
# usage: benches/cli_identical/run.sh OLD_BIN NEW_BIN [WORK_DIR]
#
# The corpus (gen.py, fixed seed) covers trim, count, route, route eval, route
# diff, route check and config, JSONL batches with bad lines (malformed JSON,
# wrong types, too-long histories, unknown profiles), every built-in profile and
# Korean text. Both binaries run in the corpus directory with the same short
# environment. The one thing normalised is the throughput in the batch summary
# on stderr ("1380 lines/s, 10.8 MB/s" or "1891 lines/s"), which is a measurement, not output.
# Exits 0 when nothing differs, 1 when something does.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 OLD_BIN NEW_BIN [WORK_DIR]" >&2
    exit 2
fi
old=$(realpath "$1")
new=$(realpath "$2")
work=${3:-$(mktemp -d /tmp/cli-identical.XXXXXX)}
here=$(cd "$(dirname "$0")" && pwd)

python3 "$here/gen.py" "$work/corpus"
mkdir -p "$work/out/old" "$work/out/new" "$work/bin/old" "$work/bin/new"
# Both run as `sluice`: the help and usage lines name the binary as invoked.
ln -sf "$old" "$work/bin/old/sluice"
ln -sf "$new" "$work/bin/new/sluice"
old="$work/bin/old/sluice"
new="$work/bin/new/sluice"

# The same environment for both: no SLUICE_* variable leaks in.
run_env=(env -i "PATH=$PATH" "HOME=$work/home" "LANG=C.UTF-8" "COLUMNS=100")
mkdir -p "$work/home"

normalise() {
    sed -E 's/[0-9][0-9,]*(\.[0-9]+)? lines\/s(, [0-9][0-9,]*(\.[0-9]+)? [KMG]?B\/s)?/N lines\/s/g' "$1"
}

cases=0
bytes=0
differences=0
first=""
while IFS=$'\t' read -r -a fields; do
    [[ ${#fields[@]} -eq 0 ]] && continue
    name=${fields[0]}
    stdin=${fields[1]}
    args=("${fields[@]:2}")
    [[ $stdin == "-" ]] && stdin=/dev/null
    for side in old new; do
        bin=$old
        [[ $side == new ]] && bin=$new
        dir="$work/out/$side/$name"
        mkdir -p "$dir"
        set +e
        (cd "$work/corpus" && "${run_env[@]}" "$bin" "${args[@]}" <"$stdin" >"$dir/stdout" 2>"$dir/stderr.raw")
        echo $? >"$dir/status"
        set -e
        normalise "$dir/stderr.raw" >"$dir/stderr"
    done
    cases=$((cases + 1))
    for stream in stdout stderr status; do
        a="$work/out/old/$name/$stream"
        b="$work/out/new/$name/$stream"
        bytes=$((bytes + $(stat -c %s "$a")))
        if ! cmp -s "$a" "$b"; then
            differences=$((differences + 1))
            if [[ -z $first ]]; then
                first="$name ($stream)"
                echo "first difference: $name, $stream: sluice ${args[*]}" >&2
                diff <(head -c 2000 "$a") <(head -c 2000 "$b") | head -20 >&2 || true
            fi
        fi
    done
done <"$work/corpus/cases.tsv"

echo "cli_identical: $cases cases, $bytes bytes compared (stdout, stderr, exit codes), $differences differences${first:+; first: $first}"
echo "outputs in $work/out"
[[ $differences -eq 0 ]]
