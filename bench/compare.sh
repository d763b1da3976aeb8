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

readonly kProxies=(speedmimi nginx haproxy)
readonly kBody="hello, world"
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

workdir=""
declare -a started_pids=()  # every server we started, in start order; each leads its own group
declare -A port=()          # name -> TCP port on 127.0.0.1
declare -A session=()       # name -> pid of its master, which leads the server's session
declare -A wanted=()        # proxy name -> 1 when it takes part in this run
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

die() {
  echo "compare.sh: $*" >&2
  exit 1
}

note() { echo "compare.sh: $*" >&2; }

# Accepts only positive integers (or >= 0 when $3 is "0ok"), so a typo fails before anything starts.
check_count() {
  local name=$1 value=$2 floor=${3:-}
  [[ $value =~ ^[0-9]+$ ]] || die "$name wants a whole number, got '$value'"
  if [[ $floor != 0ok && $value -eq 0 ]]; then die "$name must be at least 1"; fi
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
  local name
  if [[ -z $only ]]; then
    for name in "${kProxies[@]}"; do wanted[$name]=1; done
    return
  fi
  IFS=, read -ra names <<<"$only"
  for name in "${names[@]}"; do
    case $name in
      speedmimi | nginx | haproxy) wanted[$name]=1 ;;
      *) die "--only: unknown proxy '$name' (speedmimi, nginx, haproxy)" ;;
    esac
  done
}

# Installs wrk, nginx and haproxy from Debian when one is missing and we may (root + apt-get).
ensure_tools() {
  local missing=() tool
  for tool in wrk nginx haproxy; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
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

# Leaves speedmimi_bin empty when the binary cannot be found and was not asked for by path.
find_speedmimi() {
  [[ -n ${wanted[speedmimi]:-} ]] || return 0
  if ((speedmimi_explicit)); then
    [[ -x $speedmimi_bin ]] || die "--speedmimi: '$speedmimi_bin' is not an executable"
    return 0
  fi
  local here candidate
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  local in_path
  in_path=$(command -v speedmimi || true)
  for candidate in "$PWD/src/speedmimi" "$here/../src/speedmimi" "$in_path"; do
    if [[ -n $candidate && -x $candidate ]]; then
      speedmimi_bin=$candidate
      return 0
    fi
  done
  note "speedmimi binary not found (./src/speedmimi, $here/../src/speedmimi, PATH);" \
    "SKIPPING the speedmimi leg: run from the build directory or pass --speedmimi PATH"
  unset 'wanted[speedmimi]'
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

# A port on 127.0.0.1 below the ephemeral range (so outgoing connections never take it) where
# nothing listens now. Another program could take it before our server binds; the server then fails
# to start and wait_for_port says so.
pick_port() {
  local low high candidate used tries p
  read -r low high </proc/sys/net/ipv4/ip_local_port_range
  high=$((low > 12000 ? low - 1 : 60999))
  low=$((low > 12000 ? 10000 : high - 20000))
  for ((tries = 0; tries < 200; tries++)); do
    candidate=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
    used=0
    for p in "${port[@]}"; do [[ $p == "$candidate" ]] && used=1; done
    ((used)) && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  die "no free port found on 127.0.0.1"
}

# nginx needs writable temp directories for every module it was built with; Debian points them at
# /var/lib/nginx, so each instance gets its own under its prefix.
nginx_temp_paths() {
  local dir=$1 built module
  built=$(nginx -V 2>&1)
  echo "  client_body_temp_path $dir/tmp/body;"
  echo "  proxy_temp_path $dir/tmp/proxy;"
  for module in fastcgi uwsgi scgi; do
    if [[ $built != *"--without-http_${module}_module"* ]]; then
      echo "  ${module}_temp_path $dir/tmp/$module;"
    fi
  done
}

write_backend_conf() {
  local dir=$1
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $((2 * connections + 1024)); }
http {
  access_log off;
$(nginx_temp_paths "$dir")
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:${port[backend]};
    location / { return 200 "$kBody\n"; }
  }
}
EOF
}

# The same work as speedmimi does by design: keep-alive to the backend and the X-Forwarded-* set.
write_nginx_conf() {
  local dir=$1
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $((2 * connections + 1024)); }
http {
  access_log off;
$(nginx_temp_paths "$dir")
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  upstream backend {
    server 127.0.0.1:${port[backend]};
    keepalive $((connections > 32 ? connections : 32));
    keepalive_requests 100000000;
  }
  server {
    listen 127.0.0.1:${port[nginx]};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
    }
  }
}
EOF
}

write_haproxy_conf() {
  local dir=$1
  cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((connections + 1024))

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 75s

frontend bench
    bind 127.0.0.1:${port[haproxy]}
    option forwardfor
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend backend

backend backend
    balance roundrobin
    server b1 127.0.0.1:${port[backend]}
EOF
}

write_speedmimi_conf() {
  local dir=$1
  mkdir -p "$dir/logs"
  cat >"$dir/speedmimi.yaml" <<EOF
server:
  host: "127.0.0.1"
  port: ${port[speedmimi]}
  workers: 1
  error_log: "logs/error.log"
  log_level: "warn"
  access_log: "off"
  pid_file: "logs/speedmimi.pid"
backends:
  default:
    - id: "b1"
      host: "127.0.0.1"
      port: ${port[backend]}
      weight: 1
routing:
  default:
    path: "/"
    upstream: "default"
    load_balancer: "$balancer"
grpc:
  enabled: false
EOF
}

# True while the process exists and is not a zombie waiting for us to reap it.
is_running() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
  [[ -n $state && $state != Z ]]
}

# Starts "$@" in a session (and process group) of its own, pinned to $cpus when set; the group lets
# cleanup reach the workers even if the master dies first. Output goes to $log.
start_server() {
  local name=$1 cpus=$2 log=$3
  shift 3
  local cmd=("$@")
  if [[ -n $cpus ]]; then cmd=(taskset -c "$cpus" "${cmd[@]}"); fi
  setsid "${cmd[@]}" >"$log" 2>&1 </dev/null &
  started_pids+=("$!")
  session[$name]=$!
  note "started $name (pid $!) on 127.0.0.1:${port[$name]}${cpus:+, CPU $cpus}"
}

# Waits up to 10 s for the port to accept, failing with the server's log if it does not.
wait_for_port() {
  local name=$1 pid=$2 log=$3 i
  for ((i = 0; i < 100; i++)); do
    if ! is_running "$pid"; then
      tail -n 20 "$log" "${@:4}" >&2 2>/dev/null || true
      die "$name exited during start-up (log above)"
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/${port[$name]}") 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 20 "$log" "${@:4}" >&2 2>/dev/null || true
  die "$name did not listen on 127.0.0.1:${port[$name]} within 10 s (log above)"
}

# One request through the server; the benchmark is meaningless unless it returns the backend's body.
check_answer() {
  local name=$1 reply
  # shellcheck disable=SC2016 # $1 belongs to the inner bash
  reply=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
    cat <&3' _ "${port[$name]}" 2>/dev/null | tr -d '\r') || true
  if [[ ${reply%%$'\n'*} != "HTTP/1."[01]" 200"* || $reply != *"$kBody"* ]]; then
    printf '%s\n' "$reply" | head -n 5 >&2
    die "$name on port ${port[$name]} did not answer 200 \"$kBody\" (reply above)"
  fi
}

launch() {
  local name=$1 dir=$workdir/$1 pid
  mkdir -p "$dir"
  case $name in
    backend)
      write_backend_conf "$dir"
      start_server backend "$load_cpus" "$dir/stderr.log" \
        nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
      ;;
    nginx)
      write_nginx_conf "$dir"
      start_server nginx "$proxy_cpus" "$dir/stderr.log" \
        nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
      ;;
    haproxy)
      write_haproxy_conf "$dir"
      start_server haproxy "$proxy_cpus" "$dir/stderr.log" haproxy -f "$dir/haproxy.cfg" -db
      ;;
    speedmimi)
      write_speedmimi_conf "$dir"
      start_server speedmimi "$proxy_cpus" "$dir/stderr.log" \
        "$speedmimi_bin" -c "$dir/speedmimi.yaml" -p "$dir"
      ;;
  esac
  pid=${started_pids[-1]}
  wait_for_port "$name" "$pid" "$dir/stderr.log" "$dir/error.log" "$dir/logs/error.log"
  check_answer "$name"
}

# Stops every server: TERM to the master (a graceful cue for its workers), up to 5 s, then KILL to
# whatever is left of its process group. Runs from the EXIT trap, so it must not fail.
cleanup() {
  local status=$? pid i
  trap - EXIT INT TERM
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${started_pids[@]}"; do
    for ((i = 0; i < 50; i++)); do
      is_running "$pid" || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $workdir ]]; then
    if ((keep)); then note "kept $workdir"; else rm -rf -- "$workdir"; fi
  fi
  exit "$status"
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

  workdir=$(mktemp -d "${TMPDIR:-/tmp}/speedmimi-bench.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  local name
  for name in backend "${kProxies[@]}"; do
    if [[ $name == backend || -n ${wanted[$name]:-} ]]; then port[$name]=$(pick_port); fi
  done
  note "$runs run(s) x ${#wanted[@]} prox(ies): wrk -t1 -c$connections -d${duration}s" \
    "(+${warmup}s warm-up); CPUs: $([[ $pin == split ]] &&
      echo "proxy on $proxy_cpus, wrk + backend on $load_cpus" || echo "not pinned")"
  if [[ -n ${wanted[speedmimi]:-} ]]; then
    note "speedmimi: $speedmimi_bin, load_balancer $balancer"
  fi
  launch backend
  for name in "${kProxies[@]}"; do
    if [[ -n ${wanted[$name]:-} ]]; then launch "$name"; fi
  done

  local round
  for ((round = 1; round <= runs; round++)); do measure_round "$round"; done
  report
}

main "$@"
