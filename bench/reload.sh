#!/usr/bin/env bash
# reload.sh: what reloads cost the clients, for SpeedMimi, nginx and HAProxy side by side.
#
# Each proxy in turn runs ONE worker in front of the SAME backend (a separate nginx with one worker
# that answers "hello, world\n"), started afresh for each mode. wrk loads it with 32 connections for
# 12 s while the proxy is reloaded 36 times, evenly spread (every 1/3 s): speedmimi and nginx with
# HUP to the master named in their pid files (what `-s reload` does), HAProxy in master-worker mode
# (-W) with USR2 to its master. Two modes: keep-alive connections, and `Connection: close` on every
# request. The report gives, per proxy and mode, the requests answered, the client errors (wrk's
# socket errors: connect, read, write, timeout; and non-2xx/3xx answers), and the reloads sent and
# done (the new generations the proxy's own log reports). Everything listens on 127.0.0.1 on ports
# picked at run time; configs, pid files and logs live in one mktemp directory, removed on exit.
# It installs nothing. See bench/README.
set -euo pipefail

readonly kProxies=(speedmimi nginx haproxy)
readonly kModes=(keepalive close)
readonly kBody="hello, world"

duration=12
reloads=36
connections=32
threads=1
only=""
modes=""
keep=0
speedmimi_bin=""
speedmimi_explicit=0

workdir=""
declare -a started_pids=()  # every process we started and did not stop yet; each leads a group
declare -A port=()          # name -> TCP port on 127.0.0.1
declare -A wanted=()        # proxy name -> 1 when it takes part in this run
declare -A wanted_mode=()   # mode -> 1 when it takes part in this run

usage() {
  cat <<'EOF'
usage: bench/reload.sh [options]
  --speedmimi PATH     speedmimi binary (default: ./src/speedmimi from the build directory, then
                       the one next to this script's tree, then speedmimi in PATH)
  --duration SECS      length of each wrk run (default 12)
  --reloads N          reloads during each run, evenly spread over it (default 36; 0 measures
                       the same load without reloads, a baseline)
  --connections N      wrk connections (default 32)
  --threads N          wrk threads (default 1)
  --only LIST          comma-separated subset of speedmimi,nginx,haproxy
  --modes LIST         comma-separated subset of keepalive,close (default both)
  --keep               keep the temporary directory (configs and logs) and print its path
  -h, --help           this text
EOF
}

die() {
  echo "reload.sh: $*" >&2
  exit 1
}

note() { echo "reload.sh: $*" >&2; }

# Accepts only whole numbers, at least 1 unless $3 is "0ok", so a typo fails before anything starts.
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
      --reloads) reloads=${2:?--reloads needs a number}; shift ;;
      --connections) connections=${2:?--connections needs a number}; shift ;;
      --threads) threads=${2:?--threads needs a number}; shift ;;
      --only) only=${2:?--only needs a list}; shift ;;
      --modes) modes=${2:?--modes needs a list}; shift ;;
      --keep) keep=1 ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
  done
  check_count --duration "$duration"
  check_count --reloads "$reloads" 0ok
  check_count --connections "$connections"
  check_count --threads "$threads"
  ((threads <= connections)) || die "--threads must not exceed --connections"
  ((reloads <= 100 * duration)) || die "--reloads: at most 100 per second of --duration"
}

select_proxies_and_modes() {
  local name names
  if [[ -z $only ]]; then
    for name in "${kProxies[@]}"; do wanted[$name]=1; done
  else
    IFS=, read -ra names <<<"$only"
    for name in "${names[@]}"; do
      case $name in
        speedmimi | nginx | haproxy) wanted[$name]=1 ;;
        *) die "--only: unknown proxy '$name' (speedmimi, nginx, haproxy)" ;;
      esac
    done
  fi
  if [[ -z $modes ]]; then
    for name in "${kModes[@]}"; do wanted_mode[$name]=1; done
  else
    IFS=, read -ra names <<<"$modes"
    for name in "${names[@]}"; do
      case $name in
        keepalive | close) wanted_mode[$name]=1 ;;
        *) die "--modes: unknown mode '$name' (keepalive, close)" ;;
      esac
    done
  fi
}

# wrk and nginx (the backend) are always needed, haproxy when it takes part. Nothing is installed.
check_tools() {
  local missing=() tool
  for tool in wrk nginx ${wanted[haproxy]:+haproxy} setsid; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) && return 0
  die "missing: ${missing[*]}. This script installs nothing; on Debian, as root:" \
    "apt-get install wrk nginx haproxy (nginx-light will do for nginx). nginx is always needed" \
    "(it is the backend); without haproxy, --only speedmimi,nginx leaves it out"
}

# Leaves speedmimi_bin empty when the binary cannot be found and was not asked for by path.
find_speedmimi() {
  [[ -n ${wanted[speedmimi]:-} ]] || return 0
  if ((speedmimi_explicit)); then
    [[ -x $speedmimi_bin ]] || die "--speedmimi: '$speedmimi_bin' is not an executable"
    return 0
  fi
  local here candidate in_path
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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
events { worker_connections $((4 * connections + 1024)); }
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

# As in compare.sh: keep-alive to the backend and the X-Forwarded-* set, as speedmimi does.
write_nginx_conf() {
  local dir=$1
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log notice;  # notice: each reload is logged, reloads_done counts them
events { worker_connections $((4 * connections + 1024)); }
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

# As in compare.sh, plus what HAProxy's documentation asks for reloads that lose nothing: the
# listening sockets handed from the old worker to the new one (expose-fd listeners), and idle
# keep-alive connections of a stopping worker closed only after answering their next request
# (idle-close-on-response). hard-stop-after bounds how long old workers may linger.
write_haproxy_conf() {
  local dir=$1
  cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((4 * connections + 1024))
    stats socket $dir/haproxy.sock mode 600 level admin expose-fd listeners
    hard-stop-after 30s

defaults
    mode http
    option http-keep-alive
    option idle-close-on-response
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
  log_level: "notice"
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
    load_balancer: "weight"
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

# Starts "$@" in a session (and process group) of its own, so that stopping it reaches its workers
# even if the master died first. Output goes to $log. Sets started to the new pid.
started=""
start_server() {
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 </dev/null &
  started=$!
  started_pids+=("$started")
}

# Waits up to 10 s for the port of $1 to accept, failing with the server's logs if it does not.
wait_for_port() {
  local name=$1 pid=$2 i
  shift 2
  for ((i = 0; i < 100; i++)); do
    if ! is_running "$pid"; then
      tail -n 20 "$@" >&2 2>/dev/null || true
      die "$name exited during start-up (log above)"
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/${port[$name]}") 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 20 "$@" >&2 2>/dev/null || true
  die "$name did not listen on 127.0.0.1:${port[$name]} within 10 s (log above)"
}

# True when one request through the server returns 200 and the backend's body.
answers() {
  local name=$1 reply
  # shellcheck disable=SC2016 # $1 belongs to the inner bash
  reply=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
    cat <&3' _ "${port[$name]}" 2>/dev/null | tr -d '\r') || true
  [[ ${reply%%$'\n'*} == "HTTP/1."[01]" 200"* && $reply == *"$kBody"* ]]
}

# Drops $1 from started_pids (it has ended and been reaped).
forget() {
  local pid rest=()
  for pid in "${started_pids[@]}"; do [[ $pid == "$1" ]] || rest+=("$pid"); done
  started_pids=("${rest[@]}")
}

# Stops the server whose session leader is $1: TERM (a fast stop for all three), up to 5 s, then
# KILL to what is left of its process group. Must not fail: the EXIT trap uses it.
stop_server() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    is_running "$pid" || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

cleanup() {
  local status=$? pid
  trap - EXIT INT TERM HUP
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${started_pids[@]}"; do stop_server "$pid"; done
  if [[ -n $workdir ]]; then
    if ((keep)); then note "kept $workdir"; else rm -rf -- "$workdir"; fi
  fi
  exit "$status"
}

# Starts proxy $1 for a run in directory $2; sets master to the pid its pid file names (the pid
# that gets the reload signal) and server to the session leader we started.
master="" server=""
launch_proxy() {
  local name=$1 dir=$2 pid_file i
  mkdir -p "$dir"
  case $name in
    nginx)
      write_nginx_conf "$dir"
      pid_file=$dir/nginx.pid
      start_server "$dir/stderr.log" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
      ;;
    haproxy)
      write_haproxy_conf "$dir"
      pid_file=$dir/haproxy.pid
      start_server "$dir/stderr.log" haproxy -W -db -f "$dir/haproxy.cfg" -p "$pid_file"
      ;;
    speedmimi)
      write_speedmimi_conf "$dir"
      pid_file=$dir/logs/speedmimi.pid
      start_server "$dir/stderr.log" "$speedmimi_bin" -c "$dir/speedmimi.yaml" -p "$dir"
      ;;
  esac
  server=$started
  wait_for_port "$name" "$server" "$dir/stderr.log" "$dir/error.log" "$dir/logs/error.log"
  answers "$name" || die "$name on port ${port[$name]} did not answer 200 \"$kBody\""
  master=""
  for ((i = 0; i < 50; i++)); do
    if [[ -s $pid_file ]]; then
      read -r master <"$pid_file" || true
      [[ $master =~ ^[0-9]+$ ]] && break
    fi
    master=""
    sleep 0.1
  done
  [[ -n $master ]] || die "$name wrote no pid in $pid_file"
  if [[ $master != "$server" ]]; then
    note "$name: its pid file names $master, not the process we started ($server);" \
      "signalling $master"
  fi
}

# Microseconds since the epoch, in the global now (no subshell, so the schedule stays on time).
now=0
clock() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    now=${EPOCHREALTIME//[!0-9]/}
  else
    now=$(date +%s%6N)
  fi
}

# Sleeps until the time $1 (microseconds since the epoch); returns at once when it has passed.
sleep_until() {
  local left
  clock
  left=$(($1 - now))
  ((left > 0)) || return 0
  sleep "$((left / 1000000)).$(printf '%06d' $((left % 1000000)))"
}

# Prints how many reloads proxy $1 reports done in the logs of directory $2: the new generations
# of workers it started after the first (nginx: "start worker processes", HAProxy: "Loading
# success.", speedmimi: "reload done"). Signals that arrive close together may be served by one
# reload, and a reload that fails does not count.
reloads_done() {
  local name=$1 dir=$2 pattern file first=1 count
  case $name in
    nginx) pattern='start worker processes' file=$dir/error.log ;;
    haproxy) pattern='Loading success' file=$dir/stderr.log ;;
    speedmimi) pattern='reload done' file=$dir/logs/error.log first=0 ;;
  esac
  count=$(grep -c -- "$pattern" "$file" 2>/dev/null) || true
  count=$((${count:-0} - first))
  echo $((count < 0 ? 0 : count))
}

# One run: proxy $1 in mode $2. Sets the r_* results: requests, the error counts, the reloads
# sent and done, and whether the proxy survived them (r_alive "yes", or what went wrong).
r_requests=0 r_connect=0 r_read=0 r_write=0 r_timeout=0 r_non2xx=0 r_sent=0 r_done=0 r_alive=""
run_one() {
  local name=$1 mode=$2 dir=$workdir/$1-$2 sig wrk_pid out status=0 i start interval
  r_sent=0
  r_alive=yes
  launch_proxy "$name" "$dir"
  case $name in haproxy) sig=USR2 ;; *) sig=HUP ;; esac
  local cmd=(wrk "-t$threads" "-c$connections" "-d${duration}s")
  if [[ $mode == close ]]; then cmd+=(-H "Connection: close"); fi
  cmd+=("http://127.0.0.1:${port[$name]}/")
  out=$dir/wrk.out
  # wrk ends by itself after the duration (plus its 2 s request timeout); timeout only bounds a
  # wrk that hangs.
  start_server "$out" timeout -s KILL "$((duration + 30))" "${cmd[@]}"
  wrk_pid=$started
  clock
  start=$now
  if ((reloads > 0)); then
    interval=$((duration * 1000000 / reloads))
    for ((i = 1; i <= reloads; i++)); do
      sleep_until $((start + interval * (2 * i - 1) / 2))
      is_running "$wrk_pid" || break
      if ! is_running "$master"; then
        r_alive="no (master gone after $r_sent reloads)"
        break
      fi
      if kill "-$sig" "$master" 2>/dev/null; then r_sent=$((r_sent + 1)); fi
    done
  fi
  wait "$wrk_pid" || status=$?
  forget "$wrk_pid"
  if ((status != 0)); then
    cat "$out" >&2
    die "wrk against $name ($mode) failed (status $status)"
  fi
  if [[ $r_alive == yes ]]; then
    if ! is_running "$master"; then
      r_alive="no (master gone)"
    elif ! answers "$name"; then
      r_alive="no (does not answer after the reloads)"
    fi
  fi
  stop_server "$server"
  r_done=$(reloads_done "$name" "$dir")
  local result
  result=$(awk '
    / requests in / { requests = $1 }
    /Socket errors:/ { gsub(/,/, ""); connect = $4; read = $6; write = $8; timeout = $10 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    END {
      if (requests == "") exit 1
      printf "%d %d %d %d %d %d\n", requests, connect, read, write, timeout, non2xx
    }' "$out") || {
    cat "$out" >&2
    die "cannot read wrk's output for $name ($mode)"
  }
  read -r r_requests r_connect r_read r_write r_timeout r_non2xx <<<"$result"
}

main() {
  parse_args "$@"
  select_proxies_and_modes
  export PATH=$PATH:/usr/sbin:/sbin # nginx and haproxy live in sbin, not always in a user's PATH
  check_tools
  find_speedmimi
  ((${#wanted[@]} > 0)) || die "no proxy left to measure"

  workdir=$(mktemp -d "${TMPDIR:-/tmp}/speedmimi-reload.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP

  local name mode
  for name in backend "${kProxies[@]}"; do
    if [[ $name == backend || -n ${wanted[$name]:-} ]]; then port[$name]=$(pick_port); fi
  done
  local every=""
  if ((reloads > 0)); then
    every=$(awk -v d="$duration" -v n="$reloads" 'BEGIN { printf ", one every %.3f s", d / n }')
  fi
  note "each run: wrk -t$threads -c$connections -d${duration}s with $reloads reloads$every" \
    "(speedmimi, nginx: HUP to the master; haproxy -W: USR2 to the master)"
  if [[ -n ${wanted[speedmimi]:-} ]]; then note "speedmimi: $speedmimi_bin"; fi

  mkdir -p "$workdir/backend"
  write_backend_conf "$workdir/backend"
  start_server "$workdir/backend/stderr.log" \
    nginx -p "$workdir/backend" -c "$workdir/backend/nginx.conf" -g 'daemon off;'
  wait_for_port backend "$started" "$workdir/backend/stderr.log" "$workdir/backend/error.log"
  answers backend || die "the backend on port ${port[backend]} did not answer 200 \"$kBody\""

  local -a lines=()
  local errors
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    for mode in "${kModes[@]}"; do
      [[ -n ${wanted_mode[$mode]:-} ]] || continue
      run_one "$name" "$mode"
      errors=$((r_connect + r_read + r_write + r_timeout + r_non2xx))
      note "$name $mode: $r_requests requests, $errors errors, $r_sent reloads sent," \
        "$r_done done, proxy alive after them: $r_alive"
      lines+=("$(printf '%-10s %-10s %10s  %-42s %s' "$name" "$mode" "$r_requests" \
        "$errors ($r_connect $r_read $r_write $r_timeout $r_non2xx)" "$r_sent/$r_done")")
      if [[ $r_alive != yes ]]; then lines[-1]+="  proxy $r_alive"; fi
    done
  done

  printf '%-10s %-10s %10s  %-42s %s\n' proxy mode requests \
    'errors (connect read write timeout non2xx)' 'reloads sent/done'
  printf '%s\n' "${lines[@]}"
}

main "$@"
