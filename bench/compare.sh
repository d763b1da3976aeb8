#!/usr/bin/env bash
# compare.sh: side-by-side benchmark of SpeedMimi, nginx and HAProxy, over several workloads.
#
# The three proxies run in front of the SAME backend (a separate nginx with one worker, see
# write_backend_conf) and keep their connections to it alive. Each workload starts them afresh with
# its own shape (workers, connection limit) and loads them in interleaved rounds (round 1:
# speedmimi, nginx, haproxy; round 2: ...) so that drift on the machine hits all of them alike:
#   ka50     --connections (50) keep-alive clients, 13-byte answers
#   ka1000   1,000 keep-alive clients
#   large    8 keep-alive clients, 1 MiB answers
#   post64k  50 keep-alive clients, each request a POST of a 64 KiB body
#   close    50 clients, a new connection per request, 2 workers per proxy
#   idle10k  10,000 idle keep-alive clients (bench/idle_clients.py): the proxy's memory
#   nagle    a backend that writes head and body apart with Nagle on (fake_backend --split),
#            requests one at a time (bench/latency_client.py), fresh connections and keep-alive,
#            beside a DIRECT row (the client straight to that backend)
#   faults   (only when asked for) a healthy and a misbehaving backend (bench/faults_backend.py)
#            behind each proxy, 2,400 GETs from 16 keep-alive clients (bench/faults_client.py),
#            each answer classified correct / clean 5xx / truncated / corrupt 200
#   tls-*    (only when asked for, `--workloads tls` for all six) the proxies terminating TLS 1.3
#            with one certificate made here by openssl, ECDSA P-256 (-ecdsa) or RSA 2048 (-rsa):
#            tls-ka50-*   50 keep-alive clients over TLS (wrk https)
#            tls-new-*    a new connection and a full handshake per request: kTlsNewClients
#                         `openssl s_time -new` in parallel (wrk resumes sessions on reconnect)
#            tls-resume-* a new connection per request, the session resumed: 50 wrk clients with
#                         Connection: close (wrk keeps the session across its reconnects)
# All but idle10k, nagle and faults are wrk -t1 runs; the report gives per workload the median req/s, p99
# and proxy CPU time per request over the rounds (plus GB/s for large), idle10k the processes'
# total RSS and PSS, and the ratios speedmimi/nginx and speedmimi/haproxy; nagle the requests
# over 30 ms and the p50, p90 and p99 latency. Everything listens on 127.0.0.1 on ports picked at
# run time; configs, pid files and logs live in one mktemp directory, removed on exit. See
# bench/README.
set -euo pipefail

readonly kScriptName=compare.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kHere=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly kHere

# Above this much CPU taken by other programs during a run (in CPUs), the run is reported as noisy.
readonly kForeignLimit=0.10
# At or above this share busy, the CPU of wrk + backend (--pin split) may have capped a run.
readonly kSaturatedPercent=97
readonly kTlsWorkloads=(tls-ka50-ecdsa tls-ka50-rsa tls-new-ecdsa tls-new-rsa tls-resume-ecdsa
  tls-resume-rsa)
readonly kWorkloads=(ka50 ka1000 large post64k close idle10k nagle faults "${kTlsWorkloads[@]}")
# What runs without --workloads: faults takes ~15 s a proxy and round, and is asked for by name;
# the six TLS workloads would more than double the default run (~6 min), and are asked for too.
readonly kDefaultWorkloads=(ka50 ka1000 large post64k close idle10k nagle)
readonly kPostBytes=$((64 * 1024))
readonly kIdleClients=10000
# idle10k: connections connecting or waiting for their answer at once, so that no listen backlog
# overflows; it bounds the backend connections the proxies open for them.
readonly kIdleWindow=200
readonly kIdleReadySecs=150 # idle10k: the most idle_clients.py may take to open them all
readonly kFdTarget=65536    # the open-files limit the script asks for
readonly kNagleBodyBytes=2  # nagle: the split backend's body, as in issue 12's table
readonly kNagleSlowMs=30    # nagle: a request slower than this waited for a delayed ACK (40 ms)
readonly kNagleModes=(fresh keep-alive)
readonly kFaultsRequests=2400 # faults: the GETs of each run, as in issue 12's table
readonly kFaultsClients=16    # faults: keep-alive client connections (threads)
readonly kFaultsColumns=(correct 5xx truncated corrupt)
readonly kTlsNewClients=8 # tls-new-*: openssl s_time processes, each one connection at a time

duration=5
ka50_clients=50
runs=3
warmup=2
balancer=weight
only=""
workloads=""
pin=auto
keep=0
speedmimi_bin=""
speedmimi_explicit=0
fake_backend_bin=""
nagle_requests=400
connections=0 # the clients of the workload being run; lib.sh sizes nginx's upstream keepalive by it

declare -A session=()       # name -> pid of its master, which leads the server's session
declare -A wanted_workload=() # workload -> 1 when it takes part in this run
proxy_cpus=""               # taskset CPU lists; empty = no pinning
load_cpus=""

usage() {
  cat <<'EOF'
usage: bench/compare.sh [options]
  --speedmimi PATH     speedmimi binary (default: ./src/speedmimi from the build directory, then
                       the one next to this script's tree, then speedmimi in PATH)
  --workloads LIST     comma-separated subset of ka50,ka1000,large,post64k,close,idle10k,
                       nagle,faults,tls-ka50-ecdsa,tls-ka50-rsa,tls-new-ecdsa,tls-new-rsa,
                       tls-resume-ecdsa,tls-resume-rsa; "tls" stands for the six TLS ones,
                       tls-ka50, tls-new and tls-resume for both of their key types (default all
                       but faults and the TLS ones, which are opt-in; see bench/README)
  --duration SECS      length of each measured run; for idle10k, how long the connections are
                       held idle before the memory is read (default 5)
  --connections N      the clients of ka50 (default 50)
  --requests N         nagle: the requests of each client run, one at a time (default 400)
  --fake-backend PATH  nagle: the fake_backend binary (default: t/helpers/fake_backend of the
                       build directory, then of this script's tree)
  --runs N             rounds over all proxies, per workload (default 3)
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
      --workloads) workloads=${2:?--workloads needs a list}; shift ;;
      --duration) duration=${2:?--duration needs seconds}; shift ;;
      --connections) ka50_clients=${2:?--connections needs a number}; shift ;;
      --requests) nagle_requests=${2:?--requests needs a number}; shift ;;
      --fake-backend) fake_backend_bin=${2:?--fake-backend needs a path}; shift ;;
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
  check_count --connections "$ka50_clients"
  check_count --requests "$nagle_requests"
  check_count --runs "$runs"
  check_count --warmup "$warmup" 0ok
  [[ $balancer =~ ^[a-z_]+$ ]] || die "--balancer: '$balancer' is not an algorithm name"
  [[ $pin == auto || $pin == split || $pin == none ]] || die "--pin: auto, split or none"
}

select_proxies_and_workloads() {
  select_names wanted --only proxy "$only" "${kProxies[@]}"
  local defaults
  defaults=$(IFS=,; echo "${kDefaultWorkloads[*]}")
  select_names wanted_workload --workloads workload "$(expand_tls_names "${workloads:-$defaults}")" \
    "${kWorkloads[@]}"
}

# Prints the comma-separated workload list $1 with "tls" replaced by the six TLS workloads and
# tls-ka50, tls-new, tls-resume by their -ecdsa and -rsa pair.
expand_tls_names() {
  local name names=() expanded=()
  IFS=, read -ra names <<<"$1"
  for name in "${names[@]}"; do
    case $name in
      tls) expanded+=("${kTlsWorkloads[@]}") ;;
      tls-ka50 | tls-new | tls-resume) expanded+=("$name-ecdsa" "$name-rsa") ;;
      *) expanded+=("$name") ;;
    esac
  done
  (IFS=,; echo "${expanded[*]}")
}

# The shape of workload $1, in globals: wl (its name), wl_title (one line for the report),
# wl_clients, wl_workers (per proxy), wl_path and wl_wrk (wrk's URL path and extra arguments),
# wl_limit (the connection limit of every proxy: nginx's worker_connections, HAProxy's maxconn,
# speedmimi's server.max_conn) and connections (what lib.sh sizes nginx's upstream keepalive by).
# The limit leaves room for a backend connection per client, which nginx counts in it too; for
# idle10k at most kIdleWindow clients are busy at once, so it leaves 1,024 over the clients.
wl="" wl_title="" wl_clients=0 wl_workers=1 wl_path=/ wl_limit=0
wl_tls="" # TLS workloads: the key type of the certificate, ecdsa or rsa; "" = plain HTTP
wl_wrk=()
set_workload() {
  wl=$1 wl_workers=1 wl_path=/ wl_wrk=() wl_tls=""
  local answer="$((${#kBody} + 1))-byte answers" certificate
  if [[ $wl == tls-* ]]; then
    wl_tls=${wl##*-}
    certificate=$([[ $wl_tls == ecdsa ]] && echo "ECDSA P-256" || echo "RSA 2048")
  fi
  case $wl in
    ka50) wl_clients=$ka50_clients wl_title="$wl_clients keep-alive clients, $answer" ;;
    ka1000) wl_clients=1000 wl_title="1000 keep-alive clients, $answer" ;;
    large) wl_clients=8 wl_path=/large wl_title="8 keep-alive clients, 1 MiB answers" ;;
    post64k)
      wl_clients=50 wl_path=/post wl_wrk=(-s "$workdir/post64k.lua")
      wl_title="50 keep-alive clients, 64 KiB POST bodies, $answer"
      ;;
    close)
      wl_clients=50 wl_workers=2 wl_wrk=(-H "Connection: close")
      wl_title="50 clients, a new connection per request, $answer"
      ;;
    idle10k)
      wl_clients=$kIdleClients
      wl_title="$kIdleClients idle keep-alive clients, memory after ${duration}s idle"
      ;;
    nagle)
      # Two workers, as issue 12's table: fresh client connections land on either, each with
      # its own pool of backend connections.
      wl_clients=1 wl_workers=2
      wl_title="a backend writing head and body apart with Nagle on ($kNagleBodyBytes-byte"
      wl_title+=" body), $nagle_requests requests one at a time per mode"
      ;;
    faults)
      wl_clients=$kFaultsClients
      wl_title="a healthy and a faulty backend (resets, truncated bodies, duplicate"
      wl_title+=" Content-Length, 3 s stalls; read timeout 2 s, 1 retry), $kFaultsRequests GETs"
      wl_title+=" from $kFaultsClients keep-alive clients"
      ;;
    tls-ka50-*)
      wl_clients=$ka50_clients
      wl_title="$wl_clients keep-alive clients over TLS ($certificate), $answer"
      ;;
    tls-new-*)
      wl_clients=$kTlsNewClients
      wl_title="a new TLS connection and full handshake ($certificate) per request,"
      wl_title+=" $kTlsNewClients openssl s_time -new clients, $answer"
      ;;
    tls-resume-*)
      wl_clients=50 wl_wrk=(-H "Connection: close")
      wl_title="a new TLS connection per request, session resumed ($certificate), 50 wrk"
      wl_title+=" clients, $answer"
      ;;
  esac
  if [[ $wl == idle10k ]]; then
    wl_limit=$((wl_clients + 1024))
    connections=$kIdleWindow
  else
    wl_limit=$((2 * wl_clients + 1024))
    connections=$wl_clients
  fi
  wl_title+="; $wl_workers worker$( ((wl_workers == 1)) || echo s), limit $wl_limit"
}

# Installs wrk, nginx and haproxy (and python3 for idle10k) from Debian when one is missing and we
# may (root + apt-get).
ensure_tools() {
  local missing=() name
  local python=${wanted_workload[idle10k]:-${wanted_workload[nagle]:-${wanted_workload[faults]:-}}}
  local tls=""
  for name in "${kTlsWorkloads[@]}"; do
    if [[ -n ${wanted_workload[$name]:-} ]]; then tls=openssl; fi
  done
  find_missing wrk nginx haproxy ${python:+python3} ${tls:+openssl curl}
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing ${missing[*]}; install them (Debian: apt-get install wrk nginx-light haproxy" \
      "python3)"
  fi
  note "installing wrk, nginx and haproxy (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  local nginx_pkg=nginx
  apt-cache show nginx-light >/dev/null 2>&1 && nginx_pkg=nginx-light
  apt-get install -y wrk "$nginx_pkg" haproxy ${python:+python3} ${tls:+openssl curl}
}

# ka1000 and idle10k need more open files than the usual 1024, in wrk, idle_clients.py and the
# proxies (which inherit the limit): up to kFdTarget, or the hard limit when that is lower and we
# may not raise it. Fails when that is still below the largest connection limit of the run.
raise_fd_limit() {
  local need=0 name hard soft
  for name in "${kWorkloads[@]}"; do
    [[ -n ${wanted_workload[$name]:-} ]] || continue
    set_workload "$name"
    if ((wl_limit > need)); then need=$wl_limit; fi
  done
  hard=$(ulimit -Hn)
  if [[ $hard == unlimited ]] || ((hard >= kFdTarget)); then
    ulimit -Sn "$kFdTarget"
  elif ! ulimit -n "$kFdTarget" 2>/dev/null; then
    ulimit -Sn "$hard"
  fi
  soft=$(ulimit -Sn)
  [[ $soft == unlimited ]] || ((soft >= need)) ||
    die "the open-files limit is $soft (hard $hard) and this run needs $need; raise it" \
      "(ulimit -n, as root) or leave out ka1000 / idle10k"
  note "open-files limit: $soft"
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

# Writes to $5 the raw answer of server $1 to one "$2 $3" request (method, path) with a body of $4
# bytes of "x" (none when 0), on a connection of its own.
fetch() {
  if [[ -n $tls_cert ]]; then
    curl -sk -i --max-time 10 -X "$2" -H "Connection: close" \
      "https://127.0.0.1:${port[$1]}$3" >"$5" 2>/dev/null || true
    return 0
  fi
  # shellcheck disable=SC2016 # the $n belong to the inner bash
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
    if (($4 > 0)); then
      printf "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" "$2" "$3" >&3
      printf "Content-Length: %d\r\n\r\n" "$4" >&3
      head -c "$4" /dev/zero | tr "\0" x >&3
    else
      printf "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" "$3" >&3
    fi
    cat <&3' _ "${port[$1]}" "$2" "$3" "$4" >"$5" 2>/dev/null || true
}

# Prints the value of header $2 in the answer saved in $1 (empty when absent).
header_of() {
  awk -v name="$2" 'BEGIN { name = tolower(name) ":" }
    { sub(/\r$/, "") } /^$/ { exit } tolower($1) == name { print $2; exit }' "$1"
}

# One request through server $1 shaped as workload wl's; the benchmark is meaningless unless it
# gets what the backend sends: kBody (faults: a faults_backend.py body), the whole 1 MiB for large, the split backend's
# kNagleBodyBytes for nagle, and for post64k the backend's word (X-Request-Length) that it read
# the whole body before answering.
check_answer() {
  local name=$1 out=$workdir/$wl/check-$1.out status length why="" want=$kLargeBytes
  case $wl in
    large) fetch "$name" GET /large 0 "$out" ;;
    post64k) fetch "$name" POST /post "$kPostBytes" "$out" ;;
    *) fetch "$name" GET / 0 "$out" ;;
  esac
  status=$(head -n 1 "$out" | tr -d '\r')
  if [[ $status != "HTTP/1."[01]" 200"* ]]; then
    why="status '$status'"
  elif [[ $wl == large || $wl == nagle ]]; then
    [[ $wl == large ]] || want=$kNagleBodyBytes
    length=$(header_of "$out" Content-Length)
    # The head ends at the first empty line; the body is all that follows.
    local body_bytes
    body_bytes=$(($(wc -c <"$out") - $(grep -abm1 $'^\r$' "$out" | cut -d: -f1) - 2))
    if [[ $length != "$want" || $body_bytes != "$want" ]]; then
      why="Content-Length '$length' and $body_bytes bytes of body, not $want"
    fi
  elif [[ $wl == faults ]]; then
    grep -q "backend says hello" "$out" || why="no \"backend says hello\" in the body"
  elif ! grep -q "$kBody" "$out"; then
    why="no \"$kBody\" in the body"
  elif [[ $wl == post64k ]]; then
    length=$(header_of "$out" X-Request-Length)
    if [[ ! $length =~ ^[0-9]+$ ]] || ((length < kPostBytes)); then
      why="the backend read ${length:-no} bytes of the request, less than its $kPostBytes of body"
    fi
  fi
  if [[ -z $why && -n $wl_tls ]]; then check_tls "$name" || true; fi
  [[ -z $why ]] && return 0
  head -c 600 "$out" | tr -d '\r' | head -n 8 >&2 || true
  die "$wl: $name on port ${port[$name]} did not answer as the backend does: $why (answer above)"
}

# Workload wl is a TLS one: server $1 must serve the certificate made for it (its key size tells
# ECDSA P-256 from RSA 2048) over TLS 1.3, and, for tls-resume, resume a session (else the
# workload would measure full handshakes): a fatal error for the first, a warning in the report
# for the second.
declare -A no_resumption=() # workload -> the proxies that did not resume a session
check_tls() {
  local name=$1 out=$workdir/$wl/tls-$1 bits
  bits=$([[ $wl_tls == ecdsa ]] && echo 256 || echo 2048)
  # A request answered and the connection closed by the server (-ign_eof): TLS 1.3 sends its
  # session tickets after the handshake, and s_client must read them before it saves the session.
  local request=$'GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n'
  timeout 10 openssl s_client -connect "127.0.0.1:${port[$name]}" -ign_eof \
    -sess_out "$out.session" <<<"$request" >"$out.first" 2>&1 || true
  if ! grep -q "Server public key is $bits bit" "$out.first" || ! grep -q "TLSv1.3" "$out.first"
  then
    die "$wl: $name did not serve the $wl_tls certificate over TLS 1.3 (see $out.first)"
  fi
  [[ $wl == tls-resume-* ]] || return 0
  timeout 10 openssl s_client -connect "127.0.0.1:${port[$name]}" -ign_eof \
    -sess_in "$out.session" <<<"$request" >"$out.again" 2>&1 || true
  if ! grep -q "^Reused," "$out.again"; then
    note "$wl: $name did not resume the session (see $out.again)"
    no_resumption[$wl]+=" $name"
  fi
}

# Sets tls_cert, tls_key and tls_pem (lib.sh) to the certificate of workload wl, or clears them.
use_tls_certificate() {
  tls_cert="" tls_key="" tls_pem=""
  [[ -n $wl_tls ]] || return 0
  tls_cert=$workdir/tls/$wl_tls.crt tls_key=$workdir/tls/$wl_tls.key tls_pem=$workdir/tls/$wl_tls.pem
}

# One self-signed certificate per key type for the TLS workloads, made into workdir/tls: the same
# files for the three proxies.
make_tls_certificates() {
  local dir=$workdir/tls kind
  mkdir -p "$dir"
  for kind in ecdsa rsa; do
    local key_args=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    [[ $kind == ecdsa ]] || key_args=(-newkey rsa:2048)
    openssl req -x509 "${key_args[@]}" -nodes -keyout "$dir/$kind.key" -out "$dir/$kind.crt" \
      -subj /CN=bench.test -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" -days 30 \
      2>"$dir/$kind.log" || die "openssl could not make the $kind certificate: $(cat "$dir/$kind.log")"
    cat "$dir/$kind.crt" "$dir/$kind.key" >"$dir/$kind.pem"
  done
  chmod 644 "$dir"/*
}

# Starts proxy $1 for workload wl, in its own directory, on a fresh port.
launch() {
  local name=$1 dir=$workdir/$wl/$1
  mkdir -p "$dir"
  port[$name]=$(pick_port)
  case $name in
    nginx)
      write_nginx_conf "$dir" "$wl_limit" warn "$wl_workers"
      start_pinned nginx "$proxy_cpus" "$dir/stderr.log" \
        nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
      ;;
    haproxy)
      write_haproxy_conf "$dir" "$wl_limit" "" "$wl_workers"
      start_pinned haproxy "$proxy_cpus" "$dir/stderr.log" haproxy -f "$dir/haproxy.cfg" -db
      ;;
    speedmimi)
      write_speedmimi_conf "$dir" warn "$balancer" "$wl_workers" "$wl_limit"
      start_pinned speedmimi "$proxy_cpus" "$dir/stderr.log" \
        "$speedmimi_bin" -c "$dir/speedmimi.yaml" -p "$dir"
      ;;
  esac
  wait_for_port "$name" "$started" "$dir/stderr.log" "$dir/error.log" "$dir/logs/error.log"
  check_answer "$name"
}

# The backend serves every workload; its connections: up to one per client from each proxy.
launch_backend() {
  local dir=$workdir/backend name most=$kIdleWindow
  for name in "${kWorkloads[@]}"; do
    [[ -n ${wanted_workload[$name]:-} && $name != idle10k ]] || continue
    set_workload "$name"
    if ((wl_clients > most)); then most=$wl_clients; fi
  done
  mkdir -p "$dir"
  port[backend]=$(pick_port)
  write_backend_conf "$dir" $((3 * most + 1024))
  start_pinned backend "$load_cpus" "$dir/stderr.log" \
    nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
  wait_for_port backend "$started" "$dir/stderr.log" "$dir/error.log"
  answers backend || die "the backend on port ${port[backend]} did not answer 200 \"$kBody\""
}

# Sets fake_backend_bin (--fake-backend, or t/helpers/fake_backend of the build directory or of
# this script's tree; `make` builds it), or fails: the nagle workload needs it.
find_fake_backend() {
  if [[ -n $fake_backend_bin ]]; then
    [[ -x $fake_backend_bin ]] || die "--fake-backend: '$fake_backend_bin' is not an executable"
    return 0
  fi
  local candidate
  for candidate in "$PWD/t/helpers/fake_backend" "$kHere/../t/helpers/fake_backend"; do
    if [[ -x $candidate ]]; then
      fake_backend_bin=$candidate
      return 0
    fi
  done
  die "nagle: t/helpers/fake_backend not found in $PWD or $kHere/..; build it (make" \
    "t/helpers/fake_backend), pass --fake-backend PATH or leave out the nagle workload"
}

# The nagle workload's backend: fake_backend --split, pinned with the other backend. Its port is
# port[nagle_backend]; while nagle runs, port[upstream] points the proxies at it.
launch_nagle_backend() {
  local dir=$workdir/nagle/backend
  mkdir -p "$dir"
  port[nagle_backend]=$(pick_port)
  start_pinned nagle_backend "$load_cpus" "$dir/stderr.log" \
    "$fake_backend_bin" --split "${port[nagle_backend]}" "$kNagleBodyBytes"
  wait_for_port nagle_backend "$started" "$dir/stderr.log"
}

# The faults workload's backends, bench/faults_backend.py pinned with the other backend: "healthy"
# on port[faults_healthy] and "faulty" (its cycle of faults) on port[faulty]; while faults runs,
# port[upstream] points the proxies at the healthy one, and lib.sh adds the faulty one.
launch_faults_backends() {
  local dir=$workdir/faults/backends name
  mkdir -p "$dir"
  for name in healthy faulty; do
    port[faults_$name]=$(pick_port)
    start_pinned "faults_$name" "$load_cpus" "$dir/$name.log" \
      python3 "$kHere/faults_backend.py" "${port[faults_$name]}" "$name"
    wait_for_port "faults_$name" "$started" "$dir/$name.log"
  done
}

# Puts the faulty backend's cycle back at its first step (faults_backend.py's /_cycle/reset).
reset_faults_cycle() {
  local out=$workdir/faults/cycle-reset.out
  # shellcheck disable=SC2016 # $1 belongs to the inner bash
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf "GET /_cycle/reset HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" >&3
    cat <&3' _ "${port[faults_faulty]}" >"$out" 2>/dev/null || true
  grep -q '^HTTP/1.1 204' "$out" || die "faults: the faulty backend did not reset its cycle"
}

stop_proxies() {
  local name
  for name in "${kProxies[@]}"; do
    [[ -n ${session[$name]:-} ]] || continue
    stop_server "${session[$name]}"
    unset 'session[$name]'
  done
}

run_wrk() {
  local name=$1 secs=$2 cmd scheme=http
  [[ -z $wl_tls ]] || scheme=https
  cmd=(wrk -t1 "-c$wl_clients" "-d${secs}s" --latency "${wl_wrk[@]}"
    "$scheme://127.0.0.1:${port[$name]}$wl_path")
  if [[ -n $load_cpus ]]; then cmd=(taskset -c "$load_cpus" "${cmd[@]}"); fi
  "${cmd[@]}"
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

# Prints "rss_kib pss_kib processes" summed over the processes of the session led by $1 (the
# proxy's master, workers and, for speedmimi, control process). RSS counts the pages processes
# share once per process; PSS splits them among the sharers.
memory_sample() {
  local pids pid rss pss total_rss=0 total_pss=0 count=0
  pids=$(cat /proc/[0-9]*/stat 2>/dev/null |
    awk -v leader="$1" '{ pid = $1; sub(/^.*\) /, ""); if ($4 == leader) print pid }') || true
  for pid in $pids; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    [[ -n $rss ]] || continue # a zombie has no memory
    pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null) || pss=0
    total_rss=$((total_rss + rss))
    total_pss=$((total_pss + ${pss:-0}))
    count=$((count + 1))
  done
  echo "$total_rss $total_pss $count"
}

# Results, keyed "workload/proxy" (nagle: "nagle/target/mode"): space-separated values, one per
# round.
declare -A rps_runs=() p99_runs=() cpu_runs=() gib_runs=() error_total=()
declare -A rss_runs=() pss_runs=() rss0_runs=() procs_seen=()
declare -A slow_runs=() p50_runs=() p90_runs=()
declare -A faults_runs=() # "faults/proxy/column" -> one count per round (kFaultsColumns)
declare -A noisy_runs=() saturated_runs=() # per workload: runs other programs disturbed, or that
                                           # the wrk + backend CPU may have capped

# Counts a run of workload wl as noisy when other programs used $1 CPUs, over kForeignLimit, and
# as saturated when the wrk + backend CPU was $2 percent busy, kSaturatedPercent or more.
count_disturbed() {
  if awk -v f="$1" -v limit="$kForeignLimit" 'BEGIN { exit !(f > limit) }'; then
    noisy_runs[$wl]=$((${noisy_runs[$wl]:-0} + 1))
  fi
  if [[ -n $load_cpus ]] && (($2 >= kSaturatedPercent)); then
    saturated_runs[$wl]=$((${saturated_runs[$wl]:-0} + 1))
  fi
}

# One round of workload wl (a wrk workload) over the proxies.
measure_round() {
  local round=$1 name key out rps p99 errors requests rate before after foreign cpu_us load
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    key=$wl/$name
    if ((warmup > 0)); then
      run_wrk "$name" "$warmup" >/dev/null || die "$wl: wrk warm-up against $name failed"
    fi
    before=$(cpu_sample "${session[$name]}")
    out=$(run_wrk "$name" "$duration") || die "$wl: wrk against $name failed"
    after=$(cpu_sample "${session[$name]}")
    read -r rps p99 errors requests rate < <(parse_wrk <<<"$out") ||
      die "$wl: cannot read wrk output for $name:"$'\n'"$out"
    read -r foreign cpu_us load < <(run_stats "$before" "$after" "$requests")
    rps_runs[$key]+=" $rps"
    p99_runs[$key]+=" $p99"
    cpu_runs[$key]+=" $cpu_us"
    gib_runs[$key]+=" $rate"
    error_total[$key]=$((${error_total[$key]:-0} + errors))
    note "$wl round $round/$runs: $name $rps req/s$([[ $wl == large ]] && echo " ($rate GB/s)")," \
      "p99 ${p99}ms, ${cpu_us}us CPU/req, errors $errors; other programs used $foreign" \
      "CPU${load_cpus:+, wrk+backend CPU $load% busy}"
    count_disturbed "$foreign" "$load"
  done
}

# One round of idle10k over the proxies: the memory of each before and while kIdleClients idle
# keep-alive connections are open to it, after --duration seconds of idleness.
measure_idle_round() {
  local round=$1 name key out client i line held failed first_error open base rss pss procs
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    key=$wl/$name
    read -r base _ _ < <(memory_sample "${session[$name]}")
    out=$workdir/$wl/idle-$name-$round.out
    local cmd=(python3 "$kHere/idle_clients.py" "${port[$name]}" "$kIdleClients" "$kIdleWindow")
    if [[ -n $load_cpus ]]; then cmd=(taskset -c "$load_cpus" "${cmd[@]}"); fi
    start_server "$out" "${cmd[@]}"
    client=$started
    line=""
    for ((i = 0; i < 10 * kIdleReadySecs; i++)); do
      line=$(grep -m1 '^ready ' "$out" 2>/dev/null || true)
      [[ -n $line ]] && break
      is_running "$client" || break
      sleep 0.1
    done
    if [[ -z $line ]]; then
      cat "$out" >&2
      die "$wl: idle_clients.py against $name did not get ready within ${kIdleReadySecs}s"
    fi
    held=${line#*held=} held=${held%% *}
    failed=${line#*failed=} failed=${failed%% *}
    first_error=${line#*first_error=}
    [[ $first_error != - ]] || first_error=""
    sleep "$duration"
    read -r rss pss procs < <(memory_sample "${session[$name]}")
    kill -USR1 "$client" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      is_running "$client" || break
      sleep 0.1
    done
    reap_server "$client"
    open=$(sed -n 's/^open=//p' "$out")
    open=${open:-0}
    rss_runs[$key]+=" $rss"
    pss_runs[$key]+=" $pss"
    rss0_runs[$key]+=" $base"
    procs_seen[$key]=$procs
    error_total[$key]=$((${error_total[$key]:-0} + kIdleClients - open))
    note "$wl round $round/$runs: $name $((rss / 1024)) MiB RSS ($((pss / 1024)) MiB PSS," \
      "$procs processes; $((base / 1024)) MiB before), $held held, $failed failed" \
      "${first_error:+(first: $first_error) }and $open still open after ${duration}s"
  done
}

# The targets of the nagle workload, in the order of its rounds and its table: the proxies taking
# part, then DIRECT (the client straight to the backend).
nagle_targets() {
  local name
  for name in "${kProxies[@]}"; do
    if [[ -n ${wanted[$name]:-} ]]; then echo "$name"; fi
  done
  echo direct
}

# One round of nagle: for each target, latency_client.py (pinned with wrk's CPU) sends
# nagle_requests requests one at a time on fresh connections, then as many on one keep-alive
# connection.
measure_nagle_round() {
  local round=$1 target mode key target_port line errors slow p50 p90 p99 before after foreign
  for target in $(nagle_targets); do
    target_port=${port[$target]:-}
    [[ $target != direct ]] || target_port=${port[nagle_backend]}
    for mode in "${kNagleModes[@]}"; do
      key=nagle/$target/$mode
      local cmd=(python3 "$kHere/latency_client.py" "$target_port" "$nagle_requests"
        --slow "$kNagleSlowMs")
      if [[ $mode == keep-alive ]]; then cmd+=(--keep-alive); fi
      if [[ -n $load_cpus ]]; then cmd=(taskset -c "$load_cpus" "${cmd[@]}"); fi
      before=$(cpu_sample "${session[$target]:-${session[nagle_backend]}}")
      line=$("${cmd[@]}") || die "nagle: latency_client.py against $target ($mode) failed: $line"
      after=$(cpu_sample "${session[$target]:-${session[nagle_backend]}}")
      read -r errors slow p50 p90 p99 < <(awk '{
          for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        } END {
          if (v["p99"] == "") exit 1
          print v["errors"], v["slow"], v["p50"], v["p90"], v["p99"]
        }' <<<"$line") || die "nagle: cannot read latency_client.py's line for $target: $line"
      read -r foreign _ _ < <(run_stats "$before" "$after" "$nagle_requests")
      slow_runs[$key]+=" $slow"
      p50_runs[$key]+=" $p50"
      p90_runs[$key]+=" $p90"
      p99_runs[$key]+=" $p99"
      error_total[$key]=$((${error_total[$key]:-0} + errors))
      note "nagle round $round/$runs: $target $mode: $slow of $nagle_requests over" \
        "${kNagleSlowMs}ms, p50 ${p50}ms p90 ${p90}ms p99 ${p99}ms, errors $errors; other" \
        "programs used $foreign CPU"
      if awk -v f="$foreign" -v limit="$kForeignLimit" 'BEGIN { exit !(f > limit) }'; then
        noisy_runs[$wl]=$((${noisy_runs[$wl]:-0} + 1))
      fi
    done
  done
}

# One round of faults: for each proxy, the faulty backend's cycle is reset, then faults_client.py
# (pinned with wrk's CPU) sends kFaultsRequests GETs from kFaultsClients keep-alive connections.
measure_faults_round() {
  local round=$1 name key line column value other no_answer secs
  declare -A counts=()
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    key=faults/$name
    reset_faults_cycle
    local cmd=(python3 "$kHere/faults_client.py" "${port[$name]}" --requests "$kFaultsRequests"
      --connections "$kFaultsClients")
    if [[ -n $load_cpus ]]; then cmd=(taskset -c "$load_cpus" "${cmd[@]}"); fi
    line=$("${cmd[@]}" 2>"$workdir/faults/client-$name-$round.err") ||
      die "faults: faults_client.py against $name failed: $line"
    for column in "${kFaultsColumns[@]}" other no_answer seconds; do
      value=$(tr ' ' '\n' <<<"$line" | sed -n "s/^$column=//p")
      [[ -n $value ]] || die "faults: cannot read faults_client.py's line for $name: $line"
      case $column in
        other) other=$value ;;
        no_answer) no_answer=$value ;;
        seconds) secs=$value ;;
        *) faults_runs[$key/$column]+=" $value" counts[$column]=$value ;;
      esac
    done
    error_total[$key]=$((${error_total[$key]:-0} + other))
    note "faults round $round/$runs: $name: ${counts[correct]} correct, ${counts[5xx]} clean" \
      "5xx, ${counts[truncated]} truncated ($no_answer with no byte of an answer)," \
      "${counts[corrupt]} corrupt 200," \
      "$other other answers, ${secs}s"
    sed 's/^/  /' "$workdir/faults/client-$name-$round.err" >&2
  done
}

# Runs kTlsNewClients `openssl s_time -new` against server $1 for $2 seconds, all at once (pinned
# with wrk's CPU), their output in $3-<i>. Sets st_connections (summed over them), st_errors (the
# clients that failed or read no answer) and st_secs (the wall time they took together: s_time
# counts whole seconds).
st_connections=0 st_errors=0 st_secs=0
run_s_time() {
  local name=$1 secs=$2 out=$3 i pids=() start end line count bytes
  local cmd=(openssl s_time -connect "127.0.0.1:${port[$name]}" -www / -new -time "$secs")
  if [[ -n $load_cpus ]]; then cmd=(taskset -c "$load_cpus" "${cmd[@]}"); fi
  start=$(date +%s.%N)
  for ((i = 0; i < kTlsNewClients; i++)); do
    "${cmd[@]}" >"$out-$i" 2>&1 </dev/null &
    pids+=($!)
  done
  st_connections=0 st_errors=0
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || st_errors=$((st_errors + 1))
  done
  end=$(date +%s.%N)
  st_secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
  for ((i = 0; i < kTlsNewClients; i++)); do
    # "N connections in T real seconds, B bytes read per connection"
    line=$(grep -a 'connections in .* real seconds' "$out-$i" | tail -n 1) || true
    count=$(awk '{ print $1 }' <<<"$line") bytes=$(awk '{ print $(NF - 4) }' <<<"$line")
    if [[ ! $count =~ ^[0-9]+$ || ! $bytes =~ ^[0-9]+$ ]] || ((bytes < ${#kBody})); then
      st_errors=$((st_errors + 1))
      continue
    fi
    st_connections=$((st_connections + count))
  done
}

# One round of a tls-new workload over the proxies: handshakes (= requests) per second of
# kTlsNewClients s_time clients, and the proxy's CPU time per handshake.
measure_handshake_round() {
  local round=$1 name key before after rate foreign cpu_us load
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    key=$wl/$name
    if ((warmup > 0)); then run_s_time "$name" "$warmup" "$workdir/$wl/warm-$name"; fi
    before=$(cpu_sample "${session[$name]}")
    run_s_time "$name" "$duration" "$workdir/$wl/s_time-$name-$round"
    after=$(cpu_sample "${session[$name]}")
    ((st_connections > 0)) || die "$wl: openssl s_time against $name made no connection" \
      "(see $workdir/$wl/s_time-$name-$round-0)"
    rate=$(awk -v n="$st_connections" -v t="$st_secs" 'BEGIN { printf "%.2f", n / t }')
    read -r foreign cpu_us load < <(run_stats "$before" "$after" "$st_connections")
    rps_runs[$key]+=" $rate"
    cpu_runs[$key]+=" $cpu_us"
    error_total[$key]=$((${error_total[$key]:-0} + st_errors))
    note "$wl round $round/$runs: $name $rate handshakes/s ($st_connections in ${st_secs}s)," \
      "${cpu_us}us CPU/handshake, errors $st_errors; other programs used $foreign" \
      "CPU${load_cpus:+, s_time+backend CPU $load% busy}"
    count_disturbed "$foreign" "$load"
  done
}

run_workload() {
  local name round
  set_workload "$1"
  use_tls_certificate
  note "== $wl: $wl_title"
  if [[ $wl == nagle ]]; then port[upstream]=${port[nagle_backend]}; fi
  if [[ $wl == faults ]]; then
    port[upstream]=${port[faults_healthy]} port[faulty]=${port[faults_faulty]}
  fi
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    # faults: each check starts at the faulty backend's first step, a correct answer.
    if [[ $wl == faults ]]; then reset_faults_cycle; fi
    launch "$name"
  done
  for ((round = 1; round <= runs; round++)); do
    case $wl in
      idle10k) measure_idle_round "$round" ;;
      nagle) measure_nagle_round "$round" ;;
      faults) measure_faults_round "$round" ;;
      tls-new-*) measure_handshake_round "$round" ;;
      *) measure_round "$round" ;;
    esac
  done
  stop_proxies
  unset 'port[upstream]' 'port[faulty]'
  tls_cert="" tls_key="" tls_pem=""
}

# Prints "speedmimi/$1  what a/b  what a/b ..." for the pairs "what mine theirs" in "${@:2}";
# n/a where one side did not run or is 0.
ratio_line() {
  local other=$1 line
  shift
  printf -v line '  %-18s' "speedmimi/$other"
  while (($# >= 3)); do
    line+=$(awk -v what="$1" -v a="$2" -v b="$3" 'BEGIN {
      if (a == "" || b == "" || b + 0 == 0) printf("  %s n/a", what)
      else printf("  %s %.2f", what, a / b) }')
    shift 3
  done
  echo "$line"
}

# The medians of workload $1 for proxy $2, in globals m_*: empty when it did not run.
m_rps="" m_p99="" m_cpu="" m_gib="" m_rss="" m_pss="" m_rss0=""
medians_of() {
  local key=$1/$2
  m_rps="" m_p99="" m_cpu="" m_gib="" m_rss="" m_pss="" m_rss0=""
  # shellcheck disable=SC2086 # the run lists are space-separated numbers
  if [[ -n ${rps_runs[$key]:-} ]]; then
    m_rps=$(median ${rps_runs[$key]})
    m_p99=$(median ${p99_runs[$key]:-}) # tls-new-* has no latencies (s_time gives none)
    m_cpu=$(median ${cpu_runs[$key]})
    m_gib=$(median ${gib_runs[$key]:-})
  fi
  # shellcheck disable=SC2086
  if [[ -n ${rss_runs[$key]:-} ]]; then
    m_rss=$(median ${rss_runs[$key]})
    m_pss=$(median ${pss_runs[$key]})
    m_rss0=$(median ${rss0_runs[$key]})
  fi
}

# The table of the nagle workload: per target and mode, the requests over kNagleSlowMs (summed
# over the rounds) and the medians of p50, p90 and p99; then how far speedmimi is from DIRECT.
report_nagle() {
  local target mode key total=$((runs * nagle_requests)) slow line
  declare -A p50=() p99=()
  echo
  echo "nagle: $wl_title; median of $runs round$( ((runs == 1)) || echo s)"
  printf '  %-10s %-11s %15s %9s %9s %9s %7s\n' proxy connections "over ${kNagleSlowMs}ms" \
    p50 p90 p99 errors
  for mode in "${kNagleModes[@]}"; do
    for target in $(nagle_targets); do
      key=nagle/$target/$mode
      # shellcheck disable=SC2086 # the run lists are space-separated numbers
      slow=$(awk '{ for (i = 1; i <= NF; i++) s += $i } END { print s + 0 }' <<<"${slow_runs[$key]}")
      # shellcheck disable=SC2086
      p50[$target/$mode]=$(median ${p50_runs[$key]})
      # shellcheck disable=SC2086
      p99[$target/$mode]=$(median ${p99_runs[$key]})
      # shellcheck disable=SC2086
      printf '  %-10s %-11s %15s %7.2fms %7.2fms %7.2fms %7d\n' "$target" "$mode" \
        "$slow of $total" "${p50[$target/$mode]}" "$(median ${p90_runs[$key]})" \
        "${p99[$target/$mode]}" "${error_total[$key]}"
    done
  done
  [[ -n ${wanted[speedmimi]:-} ]] || return 0
  line="  speedmimi-direct"
  for mode in "${kNagleModes[@]}"; do
    line+=$(awk -v mode="$mode" -v a50="${p50[speedmimi/$mode]}" -v b50="${p50[direct/$mode]}" \
      -v a99="${p99[speedmimi/$mode]}" -v b99="${p99[direct/$mode]}" \
      'BEGIN { printf("  %s p50 %+.2fms p99 %+.2fms", mode, a50 - b50, a99 - b99) }')
  done
  echo "$line"
}

# The table of the faults workload: per proxy, the medians over the rounds of the answers of each
# class (kFaultsColumns).
report_faults() {
  local name column
  echo
  echo "faults: $wl_title; median of $runs round$( ((runs == 1)) || echo s)"
  printf '  %-10s %8s %10s %10s %12s\n' proxy correct 'clean 5xx' truncated 'corrupt 200'
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    local values=()
    for column in "${kFaultsColumns[@]}"; do
      # shellcheck disable=SC2086 # the run lists are space-separated numbers
      values+=("$(median ${faults_runs[faults/$name/$column]})")
    done
    printf '  %-10s %8s %10s %10s %12s\n' "$name" "${values[@]}"
  done
}

# The table of workload $1, its ratio lines and its warnings.
report_workload() {
  local name key large=0 other pairs
  declare -A rps=() p99=() cpu=() gib=() rss=() pss=()
  set_workload "$1"
  if [[ $wl == nagle ]]; then
    report_nagle
    return
  fi
  if [[ $wl == faults ]]; then
    report_faults
    return
  fi
  [[ $wl == large ]] && large=1
  local handshakes=0
  [[ $wl != tls-new-* ]] || handshakes=1
  echo
  echo "$wl: $wl_title; median of $runs round$( ((runs == 1)) || echo s)"
  if ((handshakes)); then
    printf '  %-10s %12s %9s %7s\n' proxy handshakes/s cpu/hs errors
  elif [[ $wl == idle10k ]]; then
    printf '  %-10s %9s %9s %12s %9s %6s %7s\n' proxy 'rss' 'pss' 'rss before' KiB/conn procs errors
  elif ((large)); then
    printf '  %-10s %9s %7s %10s %9s %7s\n' proxy req/s GB/s p99 cpu/req errors
  else
    printf '  %-10s %9s %10s %9s %7s\n' proxy req/s p99 cpu/req errors
  fi
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    key=$wl/$name
    medians_of "$wl" "$name"
    rps[$name]=$m_rps p99[$name]=$m_p99 cpu[$name]=$m_cpu gib[$name]=$m_gib
    rss[$name]=$m_rss pss[$name]=$m_pss
    if ((handshakes)); then
      printf '  %-10s %12.0f %7.1fus %7d\n' "$name" "$m_rps" "$m_cpu" "${error_total[$key]}"
    elif [[ $wl == idle10k ]]; then
      awk -v n="$name" -v rss="$m_rss" -v pss="$m_pss" -v base="$m_rss0" -v clients="$wl_clients" \
        -v procs="${procs_seen[$key]}" -v errors="${error_total[$key]}" 'BEGIN {
          printf("  %-10s %5.1fMiB %5.1fMiB %8.1fMiB %9.2f %6d %7d\n", n, rss / 1024, pss / 1024,
            base / 1024, (rss - base) / clients, procs, errors) }'
    elif ((large)); then
      printf '  %-10s %9.0f %7.2f %8.2fms %7.1fus %7d\n' "$name" "$m_rps" "$m_gib" "$m_p99" \
        "$m_cpu" "${error_total[$key]}"
    else
      printf '  %-10s %9.0f %8.2fms %7.1fus %7d\n' "$name" "$m_rps" "$m_p99" "$m_cpu" \
        "${error_total[$key]}"
    fi
  done
  [[ -n ${wanted[speedmimi]:-} ]] || return 0
  for other in nginx haproxy; do
    [[ -n ${wanted[$other]:-} ]] || continue
    if [[ $wl == idle10k ]]; then
      pairs=(rss "${rss[speedmimi]}" "${rss[$other]}" pss "${pss[speedmimi]}" "${pss[$other]}")
    elif ((handshakes)); then
      pairs=(handshakes/s "${rps[speedmimi]}" "${rps[$other]}" cpu/hs "${cpu[speedmimi]}"
        "${cpu[$other]}")
    else
      # req/s and GB/s: higher is better; cpu/req and p99: lower is better.
      pairs=(req/s "${rps[speedmimi]}" "${rps[$other]}")
      if ((large)); then pairs+=(GB/s "${gib[speedmimi]}" "${gib[$other]}"); fi
      pairs+=(cpu/req "${cpu[speedmimi]}" "${cpu[$other]}" p99 "${p99[speedmimi]}" "${p99[$other]}")
    fi
    ratio_line "$other" "${pairs[@]}"
  done
}

# The warnings of workload $1, under its table: runs the machine disturbed or wrk's CPU capped,
# failed requests.
report_warnings() {
  local name key total=$((runs * ${#wanted[@]})) mode
  if [[ $1 == nagle ]]; then total=$((runs * (${#wanted[@]} + 1) * ${#kNagleModes[@]})); fi
  if ((${noisy_runs[$1]:-0} > 0)); then
    echo "  WARNING: ${noisy_runs[$1]} of $total runs noisy (other programs used over" \
      "$kForeignLimit CPU)"
  fi
  if [[ -n ${no_resumption[$1]:-} ]]; then
    echo "  WARNING:${no_resumption[$1]} did not resume a TLS session: its row measures full" \
      "handshakes"
  fi
  if ((${saturated_runs[$1]:-0} > 0)); then
    echo "  WARNING: ${saturated_runs[$1]} of $total runs had the wrk + backend CPU" \
      "${kSaturatedPercent}%+ busy: req/s may be capped, compare cpu/req"
  fi
  if [[ $1 == faults ]]; then
    # Faults are what it measures; an answer outside the four classes is not.
    for name in "${kProxies[@]}"; do
      key=faults/$name
      if ((${error_total[$key]:-0} > 0)); then
        echo "  WARNING: $name gave ${error_total[$key]} answers that are neither 200 nor 5xx" \
          "(not in the table)"
      fi
    done
    return 0
  fi
  local what=requests
  [[ $1 != idle10k ]] || what=connections
  for name in "${kProxies[@]}"; do
    key=$1/$name
    if ((${error_total[$key]:-0} > 0)); then
      echo "  WARNING: $name had ${error_total[$key]} failed $what: its numbers are not comparable"
    fi
  done
  [[ $1 == nagle ]] || return 0
  for name in $(nagle_targets); do
    for mode in "${kNagleModes[@]}"; do
      key=nagle/$name/$mode
      if ((${error_total[$key]:-0} > 0)); then
        echo "  WARNING: $name ($mode) had ${error_total[$key]} failed requests"
      fi
    done
  done
}

# One line on what was measured, for the top of the report.
report_header() {
  local versions="" name
  for name in "${kProxies[@]}"; do
    [[ -n ${wanted[$name]:-} ]] || continue
    case $name in
      speedmimi) versions+="$("$speedmimi_bin" -v 2>&1 | awk 'NR == 1')" ;;
      nginx) versions+="$(nginx -v 2>&1 | sed 's/^nginx version: //')" ;;
      haproxy) versions+="$(haproxy -v | awk 'NR == 1 { print $1, $3 }')" ;;
    esac
    versions+=", "
  done
  echo "compare.sh, $(date -u '+%Y-%m-%d %H:%M UTC'): ${versions%, }; $(nproc) CPUs," \
    "$([[ $pin == split ]] && echo "proxy on CPU $proxy_cpus, wrk + backend on CPU $load_cpus" ||
      echo "not pinned"); $runs round(s), wrk runs of ${warmup}s warm-up + ${duration}s;" \
    "speedmimi load_balancer $balancer"
}

# Minutes the run should take: the measured runs and warm-ups, and for idle10k about 5 s a proxy
# to open and close the connections; plus 2 s a proxy and workload to start.
estimate_minutes() {
  local name secs=0 proxies=${#wanted[@]}
  for name in "${kWorkloads[@]}"; do
    [[ -n ${wanted_workload[$name]:-} ]] || continue
    if [[ $name == idle10k ]]; then
      secs=$((secs + runs * proxies * (duration + 5)))
    elif [[ $name == faults ]]; then
      # ~100 stalls of 2 s over 16 clients, and the rest.
      secs=$((secs + runs * proxies * 16))
    elif [[ $name == nagle ]]; then
      # Every target in both modes; a request that waits for a delayed ACK takes ~42 ms, one
      # that does not well under 1 ms: count half the runs as waiting.
      secs=$((secs + runs * (proxies + 1) * nagle_requests * 42 / 1000))
    else
      secs=$((secs + runs * proxies * (duration + warmup)))
    fi
    secs=$((secs + 2 * proxies))
  done
  echo $(((secs + 59) / 60))
}

main() {
  parse_args "$@"
  select_proxies_and_workloads
  export PATH=$PATH:/usr/sbin:/sbin # nginx and haproxy live in sbin, not always in a user's PATH
  ensure_tools
  find_speedmimi
  if [[ -n ${wanted_workload[nagle]:-} ]]; then find_fake_backend; fi
  ((${#wanted[@]} > 0)) || die "no proxy left to measure"
  plan_cpus
  raise_fd_limit

  make_workdir speedmimi-bench
  cat >"$workdir/post64k.lua" <<EOF
wrk.method = "POST"
wrk.body = string.rep("x", $kPostBytes)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF
  local name selected=()
  for name in "${kWorkloads[@]}"; do
    if [[ -n ${wanted_workload[$name]:-} ]]; then selected+=("$name"); fi
  done
  note "workloads ${selected[*]}: $runs round(s) x ${#wanted[@]} prox(ies) each," \
    "${duration}s (+${warmup}s warm-up), about $(estimate_minutes) min; CPUs:" \
    "$([[ $pin == split ]] && echo "proxy on $proxy_cpus, wrk + backend on $load_cpus" ||
      echo "not pinned")"
  if [[ -n ${wanted[speedmimi]:-} ]]; then
    note "speedmimi: $speedmimi_bin, load_balancer $balancer"
  fi
  launch_backend
  if [[ -n ${wanted_workload[nagle]:-} ]]; then launch_nagle_backend; fi
  if [[ -n ${wanted_workload[faults]:-} ]]; then launch_faults_backends; fi
  for name in "${kTlsWorkloads[@]}"; do
    if [[ -n ${wanted_workload[$name]:-} ]]; then
      make_tls_certificates
      break
    fi
  done
  for name in "${selected[@]}"; do run_workload "$name"; done

  report_header
  for name in "${selected[@]}"; do
    report_workload "$name"
    report_warnings "$name"
  done
}

main "$@"
