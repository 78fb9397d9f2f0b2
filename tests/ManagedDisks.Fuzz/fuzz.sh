#!/usr/bin/env bash
# Builds the fuzz harness, instruments the NBD wire assembly with SharpFuzz and runs AFL++ on
# each target, seeded from corpus/; then prints, per target, the executions done, their rate,
# the paths found and the crashes and hangs (from AFL++'s fuzzer_stats).
#
#   tests/ManagedDisks.Fuzz/fuzz.sh [--execs N | --seconds S] [TARGET...]
#   tests/ManagedDisks.Fuzz/fuzz.sh live SEQUENCES [BATCHES [SEED]]
#   tests/ManagedDisks.Fuzz/fuzz.sh stats [TARGET...]      (the table again, from findings/)
#
# TARGET: request, option, handshake, connection (default: all four). --execs (default 300000)
# stops each target after about N executions; --seconds after S seconds.
# Needs the Debian package afl++; installs the sharpfuzz tool (NuGet) into .tools/.
# Findings go to findings/TARGET (not in git). A crash is reproduced with
#   dotnet instrumented/ManagedDisks.Fuzz.dll TARGET findings/TARGET/default/crashes/id:...
# and, once fixed, kept as regressions/CORPUS_FOLDER/NAME, which the unit tests replay.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

# live: the structured wrong-client generator against the real daemon, in batches, through the
# same test CI runs in short (LiveFuzzTests); its figures go to findings/live.txt.
if [ "${1:-}" = live ]; then
  report="$here/findings/live.txt"
  mkdir -p findings; rm -f "$report"
  MD_LIVE_FUZZ_SEQUENCES="${2:?how many sequences}" MD_LIVE_FUZZ_BATCHES="${3:-10}" MD_LIVE_FUZZ_SEED="${4:-1}" \
  MD_LIVE_FUZZ_REPORT="$report" dotnet test ../ManagedDisks.IntegrationTests -c Release -nologo \
    --filter "FullyQualifiedName~LiveFuzzTests" --logger "console;verbosity=minimal" || { cat "$report"; exit 1; }
  cat "$report"
  exit 0
fi

stats_only=false
if [ "${1:-}" = stats ]; then stats_only=true; shift; fi
limit=(-E 300000)
targets=()
while (($#)); do
  case "$1" in
    --execs) limit=(-E "$2"); shift 2 ;;
    --seconds) limit=(-V "$2"); shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(request option handshake connection)

fuzz_targets() {
  command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install afl++" >&2; exit 1; }
  if [ ! -x .tools/sharpfuzz ]; then
    dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path .tools >/dev/null
  fi

  # A clean publish, then only the assembly under test is instrumented (in place).
  rm -rf instrumented
  dotnet publish ManagedDisks.Fuzz.csproj -c Release -o instrumented -v q -nologo >/dev/null
  .tools/sharpfuzz instrumented/ManagedDisks.Nbd.dll >/dev/null

  corpus_of() {
    case "$1" in
      request) echo request ;;
      option|handshake) echo handshake ;;
      connection) echo connection ;;
      *) echo "unknown target $1" >&2; exit 2 ;;
    esac
  }

  export AFL_SKIP_BIN_CHECK=1          # the target is dotnet; the instrumentation is in the assembly
  export AFL_NO_UI=1 AFL_QUIET=1
  export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
  export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CRASHES=1

  mkdir -p findings
  for target in "${targets[@]}"; do
    folder="$(corpus_of "$target")"
    seeds="findings/$target.seeds"
    rm -rf "$seeds" "findings/$target"
    mkdir -p "$seeds"
    cp "corpus/$folder"/* "$seeds"/
    [ -d "regressions/$folder" ] && cp "regressions/$folder"/* "$seeds"/
    echo "fuzzing $target (${limit[*]}) from $(ls "$seeds" | wc -l) seeds..."
    # Hangs are caught by the targets themselves (a handshake or connection that has not ended
    # 5-10 s after the input ran out throws, which AFL records as a crash). AFL's own timeout is
    # only a backstop and must be generous: under SharpFuzz's persistent mode it kills the whole
    # run, and on a loaded shared machine a GC pause or a starved thread is not a hang.
    afl-fuzz -i "$seeds" -o "findings/$target" -t 30000 -m none "${limit[@]}" -- \
      dotnet instrumented/ManagedDisks.Fuzz.dll "$target" > "findings/$target.log" 2>&1 || {
        echo "afl-fuzz failed for $target:"; tail -20 "findings/$target.log"; exit 1; }
  done

}
$stats_only || fuzz_targets

stat() { sed -n "s/^$2 *: *//p" "findings/$1/default/fuzzer_stats"; }
printf '%-12s %12s %10s %12s %8s %8s %8s\n' target execs execs/s run_time_s corpus crashes hangs
total=0; bad=0
for target in "${targets[@]}"; do
  execs=$(stat "$target" execs_done)
  crashes=$(stat "$target" saved_crashes)
  hangs=$(stat "$target" saved_hangs)
  printf '%-12s %12s %10s %12s %8s %8s %8s\n' "$target" "$execs" "$(stat "$target" execs_per_sec)" \
    "$(stat "$target" run_time)" "$(stat "$target" corpus_count)" "$crashes" "$hangs"
  total=$((total + execs)); bad=$((bad + crashes + hangs))
done
echo "total executions: $total; crashes + hangs: $bad"
[ "$bad" -eq 0 ]
