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

readonly kScriptName=reload.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly kModes=(keepalive close)

duration=12
reloads=36
connections=32
threads=1
only=""
modes=""
keep=0
speedmimi_bin=""
speedmimi_explicit=0

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
  select_names wanted --only proxy "$only" "${kProxies[@]}"
  select_names wanted_mode --modes mode "$modes" "${kModes[@]}"
}

# wrk and nginx (the backend) are always needed, haproxy when it takes part. Nothing is installed.
check_tools() {
  local missing=()
  find_missing wrk nginx ${wanted[haproxy]:+haproxy} setsid
  ((${#missing[@]} == 0)) && return 0
  die "missing: ${missing[*]}. This script installs nothing; on Debian, as root:" \
    "apt-get install wrk nginx haproxy (nginx-light will do for nginx). nginx is always needed" \
    "(it is the backend); without haproxy, --only speedmimi,nginx leaves it out"
}

# Starts proxy $1 for a run in directory $2; sets master to the pid its pid file names (the pid
# that gets the reload signal) and server to the session leader we started.
master="" server=""
launch_proxy() {
  local name=$1 dir=$2 pid_file i
  mkdir -p "$dir"
  case $name in
    nginx)
      # notice: each reload is logged, reloads_done counts them
      write_nginx_conf "$dir" $((4 * connections + 1024)) notice
      pid_file=$dir/nginx.pid
      start_server "$dir/stderr.log" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
      ;;
    haproxy)
      write_haproxy_conf "$dir" $((4 * connections + 1024)) reloadable
      pid_file=$dir/haproxy.pid
      start_server "$dir/stderr.log" haproxy -W -db -f "$dir/haproxy.cfg" -p "$pid_file"
      ;;
    speedmimi)
      write_speedmimi_conf "$dir" notice weight
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

  make_workdir speedmimi-reload
  trap 'exit 129' HUP
  pick_ports
  local every=""
  if ((reloads > 0)); then
    every=$(awk -v d="$duration" -v n="$reloads" 'BEGIN { printf ", one every %.3f s", d / n }')
  fi
  note "each run: wrk -t$threads -c$connections -d${duration}s with $reloads reloads$every" \
    "(speedmimi, nginx: HUP to the master; haproxy -W: USR2 to the master)"
  if [[ -n ${wanted[speedmimi]:-} ]]; then note "speedmimi: $speedmimi_bin"; fi

  mkdir -p "$workdir/backend"
  write_backend_conf "$workdir/backend" $((4 * connections + 1024))
  start_server "$workdir/backend/stderr.log" \
    nginx -p "$workdir/backend" -c "$workdir/backend/nginx.conf" -g 'daemon off;'
  wait_for_port backend "$started" "$workdir/backend/stderr.log" "$workdir/backend/error.log"
  answers backend || die "the backend on port ${port[backend]} did not answer 200 \"$kBody\""

  local -a lines=()
  local name mode errors
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
