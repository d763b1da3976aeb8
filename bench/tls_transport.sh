#!/usr/bin/env bash
# tls_transport.sh: which TLS transport for event::Stream (DESIGN §10, issue 11), measured. The
# program bench/tls_transport serves keep-alive GETs over TLS 1.3 either through SpeedMimi's own
# event::Stream with startTls (an SSL over the socket) or through libevent's bufferevent_openssl;
# (as a server would set it up, and again with its SSL set up as Stream's: bufferevent-ra); this
# script loads each with wrk in interleaved rounds, the server alone on one CPU and wrk on the
# other, and prints per round req/s, p99 and the server's CPU time per request, then the medians
# per mode and the ratios of each bufferevent mode to stream. Two shapes: "small" (13-byte answers) and
# "16k" (16 KiB answers: a full TLS record per answer). See bench/README.
set -euo pipefail

readonly kScriptName=tls_transport.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kHere=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly kHere
readonly kModes=(stream bufferevent bufferevent-ra)
declare -A kShapeBody=([small]=13 [16k]=16384)
readonly kShapeBody

rounds=5 duration=5 warmup=2 connections=50 shapes=small,16k keep=0
program=""
server_cpu=1 load_cpu=0
declare -A rps_runs=() p99_runs=() cpu_runs=()

usage() {
  cat >&2 <<EOF
usage: $kScriptName [--rounds 5] [--duration 5] [--warmup 2] [--connections 50]
                    [--shapes small,16k] [--keep]
Run from the build directory (or the source tree when it was built in-tree).
EOF
  exit 2
}

parse_args() {
  while (($#)); do
    case $1 in
      --rounds | --duration | --warmup | --connections | --shapes)
        (($# >= 2)) || usage
        printf -v "${1#--}" '%s' "$2"
        shift 2
        ;;
      --keep) keep=1 && shift ;;
      *) usage ;;
    esac
  done
  check_count --rounds "$rounds"
  check_count --duration "$duration"
  check_count --warmup "$warmup" 0ok
  check_count --connections "$connections"
  local shape
  IFS=, read -ra shape_list <<<"$shapes"
  for shape in "${shape_list[@]}"; do
    [[ -n ${kShapeBody[$shape]:-} ]] || die "--shapes: unknown shape '$shape' (small, 16k)"
  done
}

# Builds bench/tls_transport if needed, in the build directory we run from or, for an in-tree
# build, the script's tree; sets program.
build_program() {
  local dir
  for dir in "$PWD" "$kHere/.."; do
    [[ -f $dir/Makefile ]] || continue
    make -C "$dir" -s bench/tls_transport >&2 || die "make bench/tls_transport failed in $dir"
    program=$(cd "$dir" && pwd)/bench/tls_transport
    return 0
  done
  die "no Makefile here nor in $kHere/..: run from the build directory after ./configure"
}

ensure_tools() {
  find_missing wrk openssl taskset
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (Debian: apt-get install wrk openssl util-linux)"
  # Debian's wrk links OpenSSL; one built without it cannot speak https.
  if ! ldd "$(command -v wrk)" 2>/dev/null | grep -q libssl; then
    note "wrk does not seem to link OpenSSL; https may fail (the warm-up run will tell)"
  fi
  if (($(nproc) < 2)); then
    note "fewer than 2 CPUs: nothing is pinned, and wrk competes with the server"
    server_cpu="" load_cpu=""
  fi
}

make_certificate() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$workdir/key.pem" -out "$workdir/cert.pem" -subj /CN=bench.test \
    -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" -days 30 2>"$workdir/openssl.log" ||
    die "openssl could not make the certificate: $(cat "$workdir/openssl.log")"
}

# utime + stime of process $1, in clock ticks.
cpu_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# wrk for $1 seconds against the server, on its CPU.
run_wrk() {
  local cmd=(timeout $(($1 + 30)) wrk -t1 "-c$connections" "-d$1s" --latency
    "https://127.0.0.1:${port[server]}/")
  if [[ -n $load_cpu ]]; then cmd=(taskset -c "$load_cpu" "${cmd[@]}"); fi
  "${cmd[@]}"
}

# One round of mode $1, shape $2, round $3: a fresh server, a warm-up, the measured run.
measure_round() {
  local mode=$1 shape=$2 round=$3 key="$1 $2" log=$workdir/$1-$2-$3 pid out before after
  local rps p99 errors requests hz cpu_us busy cmd start end
  port[server]=$(pick_port)
  cmd=("$program" --mode "$mode" --port "${port[server]}" --cert "$workdir/cert.pem"
    --key "$workdir/key.pem" --body "${kShapeBody[$shape]}" --seconds $((warmup + duration + 120)))
  if [[ -n $server_cpu ]]; then cmd=(taskset -c "$server_cpu" "${cmd[@]}"); fi
  start_server "$log.server" "${cmd[@]}"
  pid=$started
  wait_for_port server "$pid" "$log.server"
  if ((warmup)); then run_wrk "$warmup" >"$log.warmup" 2>&1 || true; fi
  before=$(cpu_ticks "$pid") start=$EPOCHREALTIME
  out=$(run_wrk "$duration" 2>&1) || die "wrk failed against $mode: $out"
  after=$(cpu_ticks "$pid") end=$EPOCHREALTIME
  stop_server "$pid"
  printf '%s\n' "$out" >"$log.wrk"
  read -r rps p99 errors requests _ < <(parse_wrk <<<"$out") ||
    die "cannot read wrk's output ($mode, $shape): $out"
  ((requests > 0)) || die "no request answered ($mode, $shape): is wrk built with OpenSSL? $out"
  hz=$(getconf CLK_TCK)
  cpu_us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" \
    'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
  busy=$(awk -v t=$((after - before)) -v hz="$hz" -v d="$(awk -v a="$start" -v b="$end" \
    'BEGIN { print b - a }')" 'BEGIN { printf "%.0f", t / hz / d * 100 }')
  rps_runs[$key]+=" $rps" p99_runs[$key]+=" $p99" cpu_runs[$key]+=" $cpu_us"
  printf '  %-5s %-14s %9.0f %8.2fms %8.2fus %5s%% %7d\n' "$round" "$mode" "$rps" "$p99" \
    "$cpu_us" "$busy" "$errors"
}

# Each round starts with the next mode (1: stream, bufferevent, bufferevent-ra; 2: bufferevent,
# bufferevent-ra, stream; ...), so that drift over a shape's run hits all of them alike.
run_shape() {
  local shape=$1 round mode order
  printf '\n%s: %d keep-alive clients, %d-byte answers; %d rounds of %ds after %ds warm-up\n' \
    "$shape" "$connections" "${kShapeBody[$shape]}" "$rounds" "$duration" "$warmup"
  printf '  %-5s %-14s %9s %10s %10s %6s %7s\n' round mode req/s p99 cpu/req "cpu" errors
  for ((round = 1; round <= rounds; round++)); do
    order=("${kModes[@]:$(((round - 1) % ${#kModes[@]}))}" "${kModes[@]}")
    order=("${order[@]:0:${#kModes[@]}}")
    for mode in "${order[@]}"; do measure_round "$mode" "$shape" "$round"; done
  done
  local -A m_rps=() m_p99=() m_cpu=()
  for mode in "${kModes[@]}"; do
    # shellcheck disable=SC2086 # the runs are space-separated numbers
    m_rps[$mode]=$(median ${rps_runs["$mode $shape"]})
    # shellcheck disable=SC2086
    m_p99[$mode]=$(median ${p99_runs["$mode $shape"]})
    # shellcheck disable=SC2086
    m_cpu[$mode]=$(median ${cpu_runs["$mode $shape"]})
    printf '  %-5s %-14s %9.0f %8.2fms %8.2fus\n' median "$mode" "${m_rps[$mode]}" \
      "${m_p99[$mode]}" "${m_cpu[$mode]}"
  done
  for mode in "${kModes[@]:1}"; do
    awk -v m="$mode/stream" -v r1="${m_rps[$mode]}" -v r0="${m_rps[stream]}" \
      -v p1="${m_p99[$mode]}" -v p0="${m_p99[stream]}" -v c1="${m_cpu[$mode]}" \
      -v c0="${m_cpu[stream]}" 'BEGIN { printf "  %-22s req/s %.2f  p99 %.2f  cpu/req %.2f\n",
                                        m, r1 / r0, p1 / p0, c1 / c0 }'
  done
}

main() {
  parse_args "$@"
  ensure_tools
  build_program
  make_workdir speedmimi-tls-transport
  make_certificate
  printf '%s, %s: %s, libevent %s, %s; server on CPU %s, wrk -t1 on CPU %s\n' "$kScriptName" \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(openssl version | cut -d' ' -f1-2)" \
    "$(pkg-config --modversion libevent_openssl 2>/dev/null || echo '?')" \
    "$(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)" "${server_cpu:-any}" "${load_cpu:-any}"
  local shape
  for shape in "${shape_list[@]}"; do run_shape "$shape"; done
}

main "$@"
