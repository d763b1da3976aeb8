# lib.sh: what compare.sh, reload.sh and tls_transport.sh share; each sources it from its own
# directory, so it is found from the build directory (../bench/compare.sh) and in the source tree
# (bench/compare.sh).
#
# The sourcing script sets kScriptName (the prefix of its messages) before sourcing, and the
# globals these functions read: connections (the clients of the load, which sizes nginx's
# upstream keepalive), keep (1 = leave workdir), speedmimi_bin and speedmimi_explicit
# (--speedmimi). The state below is kept here. The proxies forward to port[backend] unless
# port[upstream] is set (compare.sh's nagle workload points them at another backend). When
# port[faulty] is set (compare.sh's faults workload), each proxy gets a second backend there, of
# equal weight, and the fault handling that workload compares: a 2 s read timeout, one retry at
# the other backend, passive health off (see the faults section of bench/README). When tls_cert
# and tls_key are set (compare.sh's TLS workloads: PEM files of one certificate and its key;
# tls_pem, both in one file, for HAProxy), each proxy's listener speaks TLS 1.2 and 1.3 with them
# instead of plain HTTP, session resumption as each does it by default (tickets).
# shellcheck shell=bash disable=SC2154 # those globals are the sourcing script's

readonly kProxies=(speedmimi nginx haproxy)
readonly kBody="hello, world"
readonly kLargeBytes=$((1024 * 1024)) # the backend's /large answer

workdir=""
tls_cert="" tls_key="" tls_pem="" # the TLS listener's certificate and key; empty = plain HTTP
declare -a started_pids=()  # every process we started and did not stop yet; each leads a group
declare -A port=()          # name -> TCP port on 127.0.0.1
declare -A wanted=()        # proxy name -> 1 when it takes part in this run
started=""                  # the pid start_server started last

die() {
  echo "$kScriptName: $*" >&2
  exit 1
}

note() { echo "$kScriptName: $*" >&2; }

# Accepts only whole numbers, at least 1 unless $3 is "0ok", so a typo fails before anything starts.
check_count() {
  local name=$1 value=$2 floor=${3:-}
  [[ $value =~ ^[0-9]+$ ]] || die "$name wants a whole number, got '$value'"
  if [[ $floor != 0ok && $value -eq 0 ]]; then die "$name must be at least 1"; fi
}

# Sets to 1 in the associative array named $1 each name of the comma-separated list $4, or each
# of "${@:5}" when the list is empty. A name not among those is an error of option $2 (--only),
# whose names are $3s (proxy).
select_names() {
  local -n selected_=$1
  local option=$2 kind=$3 list=$4 name known joined
  shift 4
  local -a names_=("$@")
  if [[ -n $list ]]; then IFS=, read -ra names_ <<<"$list"; fi
  printf -v joined '%s, ' "$@"
  for name in "${names_[@]}"; do
    for known in "$@"; do [[ $name == "$known" ]] && continue 2; done
    die "$option: unknown $kind '$name' (${joined%, })"
  done
  # shellcheck disable=SC2034,SC2004 # selected_ names the caller's associative array
  for name in "${names_[@]}"; do selected_[$name]=1; done
}

# Sets missing to those of the commands "$@" that are not in PATH.
find_missing() {
  local tool
  missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
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

# Gives the backend and every proxy taking part a port.
pick_ports() {
  local name
  for name in backend "${kProxies[@]}"; do
    if [[ $name == backend || -n ${wanted[$name]:-} ]]; then port[$name]=$(pick_port); fi
  done
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

# Prints the start of an nginx.conf for prefix $1, up to the server blocks of its http block:
# $4 workers (default 1; several share the listener with accept_mutex off, nginx's default) with
# $2 connections each, the error log at level $3, no access log, keep-alive without limit, and
# request bodies up to 1 MiB read into memory (client_body_buffer_size 128k: the 64 KiB bodies of
# compare.sh's post64k never go to a temporary file).
nginx_conf_head() {
  local dir=$1 worker_connections=$2 level=$3 workers=${4:-1}
  cat <<EOF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log $level;
events {
  worker_connections $worker_connections;
  accept_mutex off;
}
http {
  access_log off;
$(nginx_temp_paths "$dir")
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  client_max_body_size 1m;
  client_body_buffer_size 128k;
EOF
}

# The backend, in $1: nginx with $2 worker connections answering kBody to every request, except:
# - /large: kLargeBytes of "x" (a file, sent with sendfile);
# - /post: kBody once it has read the whole request body, with the request's length as nginx
#   counted it (head + body) in X-Request-Length. A plain `return 200` would answer as soon as
#   the head is in and discard the body afterwards; mirror_request_body makes nginx read the body
#   first (the mirror subrequest to /sink costs nothing on the network). The content phase then
#   finds the empty file "post", refuses it to a POST with 405, and error_page turns that into
#   the 200 of /posted.
write_backend_conf() {
  local dir=$1
  mkdir -p "$dir/tmp" "$dir/www"
  head -c "$kLargeBytes" /dev/zero | tr '\0' x >"$dir/www/large"
  : >"$dir/www/post"
  {
    nginx_conf_head "$dir" "$2" warn
    cat <<EOF
  server {
    listen 127.0.0.1:${port[backend]};
    root $dir/www;
    location / { return 200 "$kBody\n"; }
    location = /large { sendfile on; }
    location = /post {
      mirror /sink;
      mirror_request_body on;
      error_page 405 =200 /posted;
    }
    location = /sink { internal; return 204; }
    location = /posted {
      internal;
      add_header X-Request-Length \$request_length always;
      return 200 "$kBody\n";
    }
  }
}
EOF
  } >"$dir/nginx.conf"
}

# The server lines of nginx's upstream: the backend, and for the faults workload the faulty one,
# both with passive health off (max_fails=0; nginx's default of 1 in 10 s would take the faulty
# backend out after its first fault, and the workload would measure that instead of retries).
nginx_servers() {
  local backend=${port[upstream]:-${port[backend]}}
  if [[ -z ${port[faulty]:-} ]]; then
    echo "    server 127.0.0.1:$backend;"
    return
  fi
  echo "    server 127.0.0.1:$backend max_fails=0;"
  echo "    server 127.0.0.1:${port[faulty]} max_fails=0;"
}

# The TLS of nginx's listener when tls_cert is set: " ssl" for its listen line (nginx_tls ssl),
# then its ssl_* lines (nginx_tls lines). TLSv1.3 is named: nginx 1.22's default is TLSv1 to
# TLSv1.2.
nginx_tls() {
  [[ -n $tls_cert ]] || return 0
  if [[ $1 == ssl ]]; then
    printf ' ssl'
    return
  fi
  printf '\n    %s' "ssl_certificate $tls_cert;" "ssl_certificate_key $tls_key;" \
    "ssl_protocols TLSv1.2 TLSv1.3;" "ssl_prefer_server_ciphers on;"
}

# The faults workload's retry policy for nginx's location (nothing otherwise).
nginx_fault_handling() {
  [[ -n ${port[faulty]:-} ]] || return 0
  printf '\n      %s' "proxy_next_upstream error timeout invalid_header;" "proxy_read_timeout 2s;"
}

# nginx as the proxy, in $1, with $2 worker connections, its error log at level $3 and $4
# workers (default 1). The same work as speedmimi does by design: keep-alive to the backend and
# the X-Forwarded-* set.
write_nginx_conf() {
  local dir=$1
  mkdir -p "$dir/tmp"
  {
    nginx_conf_head "$dir" "$2" "$3" "${4:-1}"
    cat <<EOF
  upstream backend {
$(nginx_servers)
    keepalive $((connections > 32 ? connections : 32));
    keepalive_requests 100000000;
  }
  server {
    listen 127.0.0.1:${port[nginx]}$(nginx_tls ssl);$(nginx_tls lines)
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;$(nginx_fault_handling)
    }
  }
}
EOF
  } >"$dir/nginx.conf"
}

# HAProxy as the proxy, in $1, with maxconn $2 (the frontend's too: it defaults to the global) and
# $4 threads (default 1), keep-alive to the backend, the X-Forwarded-* set. With $3 "reloadable",
# also what HAProxy's documentation asks for reloads that lose nothing: the listening sockets
# handed from the old worker to the new one (expose-fd listeners), and idle keep-alive connections
# of a stopping worker closed only after answering their next request (idle-close-on-response).
# hard-stop-after bounds how long old workers linger.
write_haproxy_conf() {
  local dir=$1 maxconn=$2 threads=${4:-1} global_more="" defaults_more="" hard bind_tls="" proto=http
  if [[ -n $tls_cert ]]; then
    bind_tls=" ssl crt $tls_pem alpn http/1.1 ssl-min-ver TLSv1.2" proto=https
  fi
  # HAProxy wants 2 descriptors per connection (client + server) and, by default (strict-limits),
  # refuses to start when the hard limit is lower; a proxy of idle clients needs only one each.
  hard=$(ulimit -Hn)
  if [[ $hard != unlimited ]] && ((hard < 2 * maxconn + 100)); then
    global_more+="
    no strict-limits"
  fi
  if [[ ${3:-} == reloadable ]]; then
    global_more+="
    stats socket $dir/haproxy.sock mode 600 level admin expose-fd listeners
    hard-stop-after 30s"
    defaults_more="
    option idle-close-on-response"
  fi
  cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $threads
    maxconn $maxconn$global_more

defaults
    mode http
    option http-keep-alive$defaults_more
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 75s

frontend bench
    bind 127.0.0.1:${port[haproxy]}$bind_tls
    option forwardfor
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto $proto
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend backend

backend backend
    balance roundrobin
    server b1 127.0.0.1:${port[upstream]:-${port[backend]}}
EOF
  # The faults workload: the faulty backend beside it (HAProxy has no passive health unless told
  # to observe), and its retry policy; the later timeout server wins over the defaults'.
  [[ -n ${port[faulty]:-} ]] || return 0
  cat >>"$dir/haproxy.cfg" <<EOF
    server b2 127.0.0.1:${port[faulty]}
    retry-on conn-failure empty-response response-timeout
    retries 1
    option redispatch
    timeout server 2s
EOF
}

# speedmimi as the proxy, in $1: logging at level $2, load_balancer $3, $4 workers (default 1),
# server.max_conn $5 (default: speedmimi's own, 10000).
write_speedmimi_conf() {
  local dir=$1 level=$2 balancer=$3 workers=${4:-1} max_conn="" faults="" second="" retries=""
  local ssl=""
  if [[ -n $tls_cert ]]; then
    ssl=$'\n'"ssl:"$'\n'"  enabled: true"$'\n'"  port: 0"$'\n'"  cert_file: \"$tls_cert\""
    ssl+=$'\n'"  key_file: \"$tls_key\""
  fi
  if [[ -n ${5:-} ]]; then max_conn=$'\n'"  max_conn: $5"; fi
  # The faults workload: a 2 s read timeout, the faulty backend beside the other (passive health
  # off on both, as for nginx), one retry with the default retry_on.
  if [[ -n ${port[faulty]:-} ]]; then
    faults=$'\n'"  read_timeout: 2s"
    second=$'\n'"      max_fails: 0"
    second+=$'\n'"    - id: \"b2\""$'\n'"      host: \"127.0.0.1\""
    second+=$'\n'"      port: ${port[faulty]}"$'\n'"      weight: 1"$'\n'"      max_fails: 0"
    retries=$'\n'"    retries: 1"
  fi
  mkdir -p "$dir/logs"
  cat >"$dir/speedmimi.yaml" <<EOF
server:
  host: "127.0.0.1"
  port: ${port[speedmimi]}
  workers: $workers$max_conn$faults
  error_log: "logs/error.log"
  log_level: "$level"
  access_log: "off"
  pid_file: "logs/speedmimi.pid"$ssl
backends:
  default:
    - id: "b1"
      host: "127.0.0.1"
      port: ${port[upstream]:-${port[backend]}}
      weight: 1$second
routing:
  default:
    path: "/"
    upstream: "default"
    load_balancer: "$balancer"$retries
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

# Starts "${@:2}" in a session (and process group) of its own, so that stopping it reaches its
# workers even if the master died first. Output goes to $1. Sets started to the new pid.
start_server() {
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 </dev/null &
  started=$!
  started_pids+=("$started")
}

# Waits up to 10 s for the port of $1 (whose process is $2) to accept, failing with the server's
# logs ("${@:3}") if it does not.
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

# True when one request through the server returns 200 and the backend's body. Sets reply to the
# answer.
answers() {
  local name=$1
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

# Gives the server whose session leader is $1, told to stop, up to 5 s, then KILLs what is left of
# its process group, and reaps it. Must not fail: the EXIT trap uses it.
reap_server() {
  local pid=$1 i
  for ((i = 0; i < 50; i++)); do
    is_running "$pid" || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

# Stops the server whose session leader is $1: TERM (a fast stop for all three), then reap_server.
stop_server() {
  kill -TERM "$1" 2>/dev/null || true
  reap_server "$1"
}

# Stops every server still running (all told at once, then each waited for) and removes workdir
# unless keep. Runs from the EXIT trap, so it must not fail.
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM HUP
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${started_pids[@]}"; do reap_server "$pid"; done
  if [[ -n $workdir ]]; then
    if ((keep)); then note "kept $workdir"; else rm -rf -- "$workdir"; fi
  fi
  exit "$status"
}

# Makes workdir (mktemp -d, named after $1) and sets the traps that clean up on exit and Ctrl-C.
# It is opened to all (mktemp makes it 0700): nginx started as root runs its workers as nobody,
# and they must reach the backend's files and their own temporary directories under it.
make_workdir() {
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  chmod 755 "$workdir"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Prints "req/s p99_ms errors requests GiB/s" for one wrk run; errors = socket errors +
# non-2xx/3xx answers; GiB/s is wrk's Transfer/sec (its units are powers of 1024).
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /m$/) return v * 60000
      if (v ~ /s$/) return v * 1000
      return v + 0
    }
    function gib(v,   unit, k) {
      unit = v; sub(/^[0-9.]+/, "", unit)
      if (unit == "B") k = 1; else if (unit == "KB") k = 2; else if (unit == "MB") k = 3
      else if (unit == "GB") k = 4; else if (unit == "TB") k = 5; else return 0
      return v * 1024 ^ (k - 1) / 1024 ^ 3
    }
    / requests in / { requests = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /^Transfer\/sec:/ { rate = gib($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
    END {
      if (rps == "" || p99 == "" || requests == "") exit 1
      printf "%.2f %.3f %d %d %.3f\n", rps, p99, errors, requests, rate
    }'
}

# The median of the numbers "$@".
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
