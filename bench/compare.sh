#!/usr/bin/env bash
# compare.sh: side-by-side benchmark of SpeedMimi, nginx and HAProxy.
#
# Each proxy runs ONE worker in front of the SAME backend (a separate nginx with one worker that
# answers "hello, world\n"), keeps connections to that backend alive, and is loaded by wrk with one
# thread. Runs interleave the proxies (round 1: speedmimi, nginx, haproxy; round 2: ...) so that
# drift on the machine hits all of them alike; the report gives the median req/s, p99 and proxy CPU
# time per request over the runs. Everything listens on 127.0.0.1 on ports picked at run time;
# configs, pid files and logs live in one mktemp directory, removed on exit. See bench/README.
set -euo pipefail

readonly kScriptName=compare.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Above this much CPU taken by other programs during a run (in CPUs), the run is reported as noisy.
readonly kForeignLimit=0.10
# At or above this share busy, the CPU of wrk + backend (--pin split) may have capped a run.
readonly kSaturatedPercent=97

duration=10
connections=50
runs=3
warmup=2
balancer=weight
only=""
pin=auto
keep=0
speedmimi_bin=""
speedmimi_explicit=0

declare -A session=()       # name -> pid of its master, which leads the server's session
proxy_cpus=""               # taskset CPU lists; empty = no pinning
load_cpus=""

usage() {
  cat <<'EOF'
usage: bench/compare.sh [options]
  --speedmimi PATH     speedmimi binary (default: ./src/speedmimi from the build directory, then
                       the one next to this script's tree, then speedmimi in PATH)
  --duration SECS      length of each measured wrk run (default 10)
  --connections N      wrk connections (default 50)
  --runs N             rounds over all proxies (default 3)
  --warmup SECS        unmeasured wrk run before each measured run (default 2; 0 disables)
  --balancer NAME      speedmimi's routing load_balancer (default weight)
  --only LIST          comma-separated subset of speedmimi,nginx,haproxy
  --pin MODE           auto (split when there are 2+ CPUs), split, or none; see bench/README
  --keep               keep the temporary directory (configs and logs) and print its path
  -h, --help           this text
EOF
}

parse_args() {
  while (($#)); do
    case $1 in
      --speedmimi) speedmimi_bin=${2:?--speedmimi needs a path}; speedmimi_explicit=1; shift ;;
      --duration) duration=${2:?--duration needs seconds}; shift ;;
      --connections) connections=${2:?--connections needs a number}; shift ;;
      --runs) runs=${2:?--runs needs a number}; shift ;;
      --warmup) warmup=${2:?--warmup needs seconds}; shift ;;
      --balancer) balancer=${2:?--balancer needs a name}; shift ;;
      --only) only=${2:?--only needs a list}; shift ;;
      --pin) pin=${2:?--pin needs auto, split or none}; shift ;;
      --keep) keep=1 ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
  done
  check_count --duration "$duration"
  check_count --connections "$connections"
  check_count --runs "$runs"
  check_count --warmup "$warmup" 0ok
  [[ $balancer =~ ^[a-z_]+$ ]] || die "--balancer: '$balancer' is not an algorithm name"
  [[ $pin == auto || $pin == split || $pin == none ]] || die "--pin: auto, split or none"
}

select_proxies() {
  select_names wanted --only proxy "$only" "${kProxies[@]}"
}

# Installs wrk, nginx and haproxy from Debian when one is missing and we may (root + apt-get).
ensure_tools() {
  local missing=()
  find_missing wrk nginx haproxy
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing ${missing[*]}; install them (Debian: apt-get install wrk nginx-light haproxy)"
  fi
  note "installing wrk, nginx and haproxy (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  local nginx_pkg=nginx
  apt-cache show nginx-light >/dev/null 2>&1 && nginx_pkg=nginx-light
  apt-get install -y wrk "$nginx_pkg" haproxy
}

# The CPU plan (see bench/README): with 2+ CPUs the proxy under test gets a CPU of its own and wrk
# shares the other with the backend, so the number measures the proxy and not the scheduler.
plan_cpus() {
  local ncpu
  ncpu=$(nproc)
  if [[ $pin == none ]] || { [[ $pin == auto ]] && ((ncpu < 2)); }; then
    pin="none"
    return
  fi
  ((ncpu >= 2)) || die "--pin split needs at least 2 CPUs, this machine has $ncpu"
  command -v taskset >/dev/null 2>&1 || die "--pin split needs taskset (util-linux)"
  pin="split"
  local allowed
  mapfile -t allowed < <(taskset -cp $$ | sed 's/.*: //' | tr ',' '\n' |
    awk -F- '{ if (NF == 2) for (i = $1; i <= $2; i++) print i; else print $1 }')
  ((${#allowed[@]} >= 2)) || die "--pin split: this shell may run on CPU ${allowed[*]} only"
  load_cpus=${allowed[0]}
  proxy_cpus=${allowed[1]}
}

# Starts "${@:4}" as server $1, pinned to the CPUs $2 when set, output to $3 (see start_server).
start_pinned() {
  local name=$1 cpus=$2 log=$3
  shift 3
  local cmd=("$@")
  if [[ -n $cpus ]]; then cmd=(taskset -c "$cpus" "${cmd[@]}"); fi
  start_server "$log" "${cmd[@]}"
  session[$name]=$started
  note "started $name (pid $started) on 127.0.0.1:${port[$name]}${cpus:+, CPU $cpus}"
}

# One request through the server; the benchmark is meaningless unless it returns the backend's body.
check_answer() {
  local name=$1 reply
  answers "$name" && return 0
  printf '%s\n' "$reply" | head -n 5 >&2
  die "$name on port ${port[$name]} did not answer 200 \"$kBody\" (reply above)"
}

launch() {
  local name=$1 dir=$workdir/$1
  mkdir -p "$dir"
  case $name in
    backend)
      write_backend_conf "$dir" $((2 * connections + 1024))
      start_pinned backend "$load_cpus" "$dir/stderr.log" \
        nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
      ;;
    nginx)
      write_nginx_conf "$dir" $((2 * connections + 1024)) warn
      start_pinned nginx "$proxy_cpus" "$dir/stderr.log" \
        nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
      ;;
    haproxy)
      write_haproxy_conf "$dir" $((connections + 1024))
      start_pinned haproxy "$proxy_cpus" "$dir/stderr.log" haproxy -f "$dir/haproxy.cfg" -db
      ;;
    speedmimi)
      write_speedmimi_conf "$dir" warn "$balancer"
      start_pinned speedmimi "$proxy_cpus" "$dir/stderr.log" \
        "$speedmimi_bin" -c "$dir/speedmimi.yaml" -p "$dir"
      ;;
  esac
  wait_for_port "$name" "$started" "$dir/stderr.log" "$dir/error.log" "$dir/logs/error.log"
  check_answer "$name"
}

# Prints "req/s p99_ms errors requests" for one wrk run; errors = socket errors + non-2xx/3xx
# answers.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /m$/) return v * 60000
      if (v ~ /s$/) return v * 1000
      return v + 0
    }
    / requests in / { requests = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
    END {
      if (rps == "" || p99 == "" || requests == "") exit 1
      printf "%.2f %.3f %d %d\n", rps, p99, errors, requests
    }'
}

run_wrk() {
  local name=$1 secs=$2 cmd
  cmd=(wrk -t1 "-c$connections" "-d${secs}s" --latency "http://127.0.0.1:${port[$name]}/")
  if [[ -n $load_cpus ]]; then cmd=(taskset -c "$load_cpus" "${cmd[@]}"); fi
  "${cmd[@]}"
}

median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Prints "busy total ours proxy load_busy load_total" in clock ticks: CPU time spent by the whole
# machine (busy of total), by this script with its servers and the wrk runs it has reaped (ours), by
# the server whose session is $1 (proxy), and by the CPU that wrk and the backend share (load_*; 0 0
# when nothing is pinned).
cpu_sample() {
  local sessions=" ${started_pids[*]} "
  {
    cat /proc/stat
    cat /proc/[0-9]*/stat 2>/dev/null || true
  } | awk -v sessions="$sessions" -v self=$$ -v proxy="$1" -v load_cpu="cpu$load_cpus" '
    function busy_of() { return $2 + $3 + $4 + $7 + $8 }
    $1 == "cpu" { busy = busy_of(); total = busy + $5 + $6 + $9; next }
    $1 == load_cpu { load_busy = busy_of(); load_total = load_busy + $5 + $6 + $9; next }
    $1 ~ /^[a-z]/ { next }   # the rest of /proc/stat
    {
      pid = $1
      sub(/^.*\) /, "")       # after "pid (comm) ": [1] state ... [4] session ... [12] utime
      if (index(sessions, " " $4 " ")) ours += $12 + $13
      if ($4 == proxy) mine += $12 + $13
      if (pid == self) ours += $12 + $13 + $14 + $15
    }
    END { printf "%d %d %d %d %d %d\n", busy, total, ours, mine, load_busy, load_total }'
}

# Prints "foreign_cpus proxy_us_per_request load_cpu_percent" for a run of $3 requests between two
# cpu_sample lines: the CPU other programs used (1.00 = one CPU all the time), the proxy's CPU time
# per request, and how busy the wrk + backend CPU was.
run_stats() {
  awk -v before="$1" -v after="$2" -v requests="$3" -v hz="$(getconf CLK_TCK)" \
    -v ncpu="$(grep -c '^cpu[0-9]' /proc/stat)" 'BEGIN {
      split(before, a, " "); split(after, b, " ")
      for (i = 1; i <= 6; i++) d[i] = b[i] - a[i]
      foreign = d[2] > 0 ? (d[1] - d[3]) / (d[2] / ncpu) : 0
      printf("%.2f %.1f %.0f\n", foreign < 0 ? 0 : foreign, d[4] * 1e6 / hz / requests,
        d[6] > 0 ? 100 * d[5] / d[6] : 0)
    }'
}

declare -A rps_runs=() p99_runs=() cpu_runs=() error_total=()
noisy_runs=0     # runs during which other programs took more than kForeignLimit CPU
saturated_runs=0 # runs during which the wrk + backend CPU was busy all the time

measure_round() {
  local round=$1 name out rps p99 errors requests before after foreign cpu_us load
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    if ((warmup > 0)); then
      run_wrk "$name" "$warmup" >/dev/null || die "wrk warm-up against $name failed"
    fi
    before=$(cpu_sample "${session[$name]}")
    out=$(run_wrk "$name" "$duration") || die "wrk against $name failed"
    after=$(cpu_sample "${session[$name]}")
    read -r rps p99 errors requests < <(parse_wrk <<<"$out") ||
      die "cannot read wrk output for $name:"$'\n'"$out"
    read -r foreign cpu_us load < <(run_stats "$before" "$after" "$requests")
    rps_runs[$name]+=" $rps"
    p99_runs[$name]+=" $p99"
    cpu_runs[$name]+=" $cpu_us"
    error_total[$name]=$((${error_total[$name]:-0} + errors))
    note "round $round/$runs: $name $rps req/s, p99 ${p99}ms, ${cpu_us}us CPU/req," \
      "errors $errors; other programs used $foreign CPU${load_cpus:+, wrk+backend CPU $load% busy}"
    if awk -v f="$foreign" -v limit="$kForeignLimit" 'BEGIN { exit !(f > limit) }'; then
      noisy_runs=$((noisy_runs + 1))
    fi
    if [[ -n $load_cpus ]] && ((load >= kSaturatedPercent)); then
      saturated_runs=$((saturated_runs + 1))
    fi
  done
}

# Prints "ratio speedmimi/$1 $2: x.xx", or n/a when one side did not run.
ratio_line() {
  local other=$1 what=$2 mine=${3:-} theirs=${4:-}
  if [[ -z $mine || -z $theirs ]]; then
    echo "ratio speedmimi/$other $what: n/a"
  else
    awk -v a="$mine" -v b="$theirs" -v label="speedmimi/$other $what" \
      'BEGIN { printf("ratio %s: %.2f\n", label, b > 0 ? a / b : 0) }'
  fi
}

report() {
  local name
  declare -A rps_median=() cpu_median=()
  printf '%-11s %-15s %-13s %-19s %s\n' proxy 'req/s(median)' 'p99(median)' 'cpu/req(median)' \
    'errors(total)'
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    # shellcheck disable=SC2086 # the run lists are space-separated numbers
    rps_median[$name]=$(median ${rps_runs[$name]})
    # shellcheck disable=SC2086
    cpu_median[$name]=$(median ${cpu_runs[$name]})
    # shellcheck disable=SC2086
    printf '%-11s %-15.0f %-13s %-19s %s\n' "$name" "${rps_median[$name]}" \
      "$(printf '%.2fms' "$(median ${p99_runs[$name]})")" \
      "$(printf '%.1fus' "${cpu_median[$name]}")" "${error_total[$name]}"
  done
  ratio_line nginx req/s "${rps_median[speedmimi]:-}" "${rps_median[nginx]:-}"
  ratio_line haproxy req/s "${rps_median[speedmimi]:-}" "${rps_median[haproxy]:-}"
  # Lower is better here: the proxy's own CPU time per request, whatever capped req/s.
  ratio_line nginx cpu/req "${cpu_median[speedmimi]:-}" "${cpu_median[nginx]:-}"
  ratio_line haproxy cpu/req "${cpu_median[speedmimi]:-}" "${cpu_median[haproxy]:-}"
  if ((noisy_runs > 0)); then
    note "WARNING: other programs took over $kForeignLimit CPU during $noisy_runs run(s);" \
      "the machine was not quiet, so compare these numbers with care"
  fi
  if ((saturated_runs > 0)); then
    note "WARNING: the CPU shared by wrk and the backend was ${kSaturatedPercent}%+ busy in" \
      "$saturated_runs run(s); req/s may be capped there, so compare cpu/req as well"
  fi
  for name in "${kProxies[@]}"; do
    if ((${error_total[$name]:-0} > 0)); then
      note "WARNING: $name had ${error_total[$name]} failed requests;" \
        "its numbers are not comparable"
    fi
  done
}

main() {
  parse_args "$@"
  select_proxies
  export PATH=$PATH:/usr/sbin:/sbin # nginx and haproxy live in sbin, not always in a user's PATH
  ensure_tools
  find_speedmimi
  ((${#wanted[@]} > 0)) || die "no proxy left to measure"
  plan_cpus

  make_workdir speedmimi-bench
  pick_ports
  note "$runs run(s) x ${#wanted[@]} prox(ies): wrk -t1 -c$connections -d${duration}s" \
    "(+${warmup}s warm-up); CPUs: $([[ $pin == split ]] &&
      echo "proxy on $proxy_cpus, wrk + backend on $load_cpus" || echo "not pinned")"
  if [[ -n ${wanted[speedmimi]:-} ]]; then
    note "speedmimi: $speedmimi_bin, load_balancer $balancer"
  fi
  launch backend
  local name
  for name in "${kProxies[@]}"; do
    if [[ -n ${wanted[$name]:-} ]]; then launch "$name"; fi
  done

  local round
  for ((round = 1; round <= runs; round++)); do measure_round "$round"; done
  report
}

main "$@"
