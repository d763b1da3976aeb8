#!/bin/bash
# run-demo.sh BUILDDIR SRCDIR — what `make demo` runs.
# Starts two demo backends (127.0.0.1:8081 "backend1", 127.0.0.1:8082 "backend2"), then speedmimi
# with SRCDIR/conf/demo.yaml and the prefix BUILDDIR/demo-prefix (logs go to
# BUILDDIR/demo-prefix/logs; speedmimi's error log goes to the terminal).
#
# A demo process counts as started only when it is the one serving its port: it is alive, it holds
# the listening socket of that port (checked through /proc, so that another program on the port is
# never taken for ours) and it answers as it should (a backend with its own greeting, speedmimi with
# a backend's). A demo backend exits at once when it cannot bind; if a port is taken by another
# program, the demo stops and names the port (and the program, when `ss` can tell).
#
# Stopping: Ctrl-C (INT to the whole foreground group), TERM, INT or HUP to this script, TERM to
# `make` (the recipe execs this script, so make's TERM reaches it), INT, HUP or QUIT to make alone
# (make then waits for its child without passing the signal on; a watchdog notices) and the death
# of make (even by KILL) all stop speedmimi and both backends. Each child runs in a session and
# process group of its own (setsid), so that the cleanup also reaches speedmimi's workers; TERM
# first, KILL to what is left after 1.5 s.
set -u

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILDDIR SRCDIR" >&2
  exit 2
fi
builddir=$1
srcdir=$2
speedmimi="$builddir/src/speedmimi"
demo_backend="$builddir/t/helpers/demo_backend"
config="$srcdir/conf/demo.yaml"
prefix="$builddir/demo-prefix"
proxy_port=8080  # as in conf/demo.yaml
api_port=9090    # its management API

for f in "$speedmimi" "$demo_backend"; do
  if [ ! -x "$f" ]; then
    echo "run-demo.sh: $f is missing: run 'make' first" >&2
    exit 1
  fi
done
mkdir -p "$prefix/logs" || exit 1

die() {
  echo "run-demo.sh: $*" >&2
  exit 1
}

child_pids=()  # every process we started; each leads its own process group (setsid)
watchdog_pid=""

# True while process $1 exists and is not a zombie.
is_running() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# Sets parent to the parent pid of process $1 (empty if it is gone).
parent_of() {
  local stat
  parent=""
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
  stat=${stat##*) }
  stat=${stat#* }
  parent=${stat%% *}
}

# True when process $1 holds the socket that listens on TCP port $2 (IPv4 or IPv6): found through
# /proc, so that a port served by another program is never mistaken for ours.
owns_port() {
  local pid=$1 inodes inode fd
  inodes=$(awk -v port=":$(printf '%04X' "$2")" \
    '$4 == "0A" && substr($2, length($2) - 4) == port { print $10 }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  for inode in $inodes; do
    for fd in /proc/"$pid"/fd/*; do
      if [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$inode]" ]; then return 0; fi
    done
  done
  return 1
}

# TERM to every child, up to 1.5 s for them to go, then KILL to whatever is left of their process
# groups (speedmimi's workers included). Runs from the EXIT trap and must not fail.
stop_children() {
  local pid i alive
  for pid in "${child_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for ((i = 0; i < 15; i++)); do
    alive=0
    for pid in "${child_pids[@]}"; do
      if is_running "$pid"; then alive=1; fi
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${child_pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
}

# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
  # Ignored, not reset: a second TERM (from the watchdog, which may see make die at this very
  # moment) must not kill the script halfway through stopping its children.
  trap - EXIT
  trap '' INT TERM HUP
  if [ -n "$watchdog_pid" ]; then kill -KILL "$watchdog_pid" 2>/dev/null; fi
  stop_children
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# True when process $1 blocks HUP, INT, QUIT or TERM, which make does while it runs its handler for
# one of them: `kill -INT <make>` (or HUP, QUIT) without the rest of the process group makes make
# wait for its child to end by itself, forever, without passing the signal on.
in_fatal_signal_handler() {
  local line mask
  while read -r line; do
    case $line in
      SigBlk:*) mask=${line#SigBlk:}; mask=${mask//[[:space:]]/} ;;
    esac
  done 2>/dev/null <"/proc/$1/status"
  [ -n "${mask:-}" ] && (((16#$mask & 0x4007) != 0))  # bits of signals 1, 2, 3 and 15
}

# Watches, every 0.2 s, that this script's parent (make) is still there and not dying: when the
# parent dies (even by KILL) or sits in its handler of a fatal signal for two checks in a row, the
# script is told to stop (TERM); when the script itself is gone (killed with KILL), the watchdog
# stops the children itself. It knows the children started so far, so it is restarted after each
# start.
start_watchdog() {
  local script=$$ script_parent=$PPID
  if [ -n "$watchdog_pid" ]; then kill -KILL "$watchdog_pid" 2>/dev/null; fi
  (
    trap - EXIT INT TERM HUP
    trap '' INT HUP  # Ctrl-C and hangups are the script's business; the watchdog stays to the end
    me=$BASHPID told=0 dying=0
    while :; do
      parent_of "$me"
      if [ "$parent" != "$script" ]; then  # the script died and we were reparented
        stop_children
        exit 0
      fi
      if [ "$told" = 0 ]; then
        parent_of "$script"
        if [ "$parent" != "$script_parent" ]; then
          echo "run-demo.sh: the parent process ($script_parent) is gone: stopping the demo" >&2
          kill -TERM "$script" 2>/dev/null
          told=1
        elif in_fatal_signal_handler "$script_parent"; then
          dying=$((dying + 1))
          if [ "$dying" -ge 2 ]; then
            echo "run-demo.sh: the parent process ($script_parent) got a signal to stop:" \
              "stopping the demo" >&2
            kill -TERM "$script" 2>/dev/null
            told=1
          fi
        else
          dying=0
        fi
      fi
      sleep 0.2
    done
  ) &
  watchdog_pid=$!
  disown "$watchdog_pid"  # no "Killed" notice from bash when the cleanup kills it
}

# Prints the body of GET http://127.0.0.1:$1$2 (empty on any failure), within 2 s.
http_get() {
  if command -v curl >/dev/null 2>&1; then
    curl -s --noproxy '*' --max-time 2 "http://127.0.0.1:$1$2" 2>/dev/null
  else
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
      cat <&3' _ "$1" "$2" 2>/dev/null | tr -d '\r' | sed '1,/^$/d'
  fi
}

# Says which program listens on port $1, when ss can tell (it is in iproute2, usually installed).
who_has_port() {
  command -v ss >/dev/null 2>&1 || return 0
  local users
  users=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(.*)' | head -n 1)
  if [ -n "$users" ]; then echo " (listening there now: $users)"; fi
}

# Sleeps $1 seconds in a way that lets a trapped signal interrupt it.
nap() {
  sleep "$1" &
  wait $! 2>/dev/null
}

# Starts demo backend $2 on port $1 and waits (at most 5 s) until it is the one serving the port:
# alive, holding the listening socket, and answering with its own greeting. The backend exits at
# once when it cannot bind (the port is taken).
start_backend() {
  local port=$1 name=$2 log="$prefix/logs/$2.log" pid i
  local greeting="Hello from $name (port $port): GET /"
  setsid "$demo_backend" "$port" "$name" >"$log" 2>&1 </dev/null &
  pid=$!
  child_pids+=("$pid")
  start_watchdog
  for ((i = 0; i < 50; i++)); do
    if ! is_running "$pid"; then
      wait "$pid" 2>/dev/null
      if grep -q "Address already in use" "$log"; then
        die "port $port is taken by another program$(who_has_port "$port"), so the demo" \
          "backend $name cannot listen there: stop that program, then run 'make demo' again"
      fi
      die "the demo backend $name could not start on port $port: $(tail -n 1 "$log")"
    fi
    if owns_port "$pid" "$port" && [ "$(http_get "$port" /)" = "$greeting" ]; then
      return 0
    fi
    nap 0.1
  done
  die "the demo backend $name did not answer \"$greeting\" on 127.0.0.1:$port within 5 s" \
    "$(who_has_port "$port")"
}

# Starts speedmimi and waits (at most 10 s) until it holds its port and answers through a backend.
start_speedmimi() {
  local pid i status reply=""
  setsid "$speedmimi" -c "$config" -p "$prefix" </dev/null &
  pid=$!
  child_pids+=("$pid")
  speedmimi_pid=$pid
  start_watchdog
  for ((i = 0; i < 100; i++)); do
    if ! is_running "$pid"; then
      wait "$pid" 2>/dev/null
      status=$?
      for port in "$proxy_port" "$api_port"; do
        if [ -n "$(who_has_port "$port")" ]; then
          die "port $port is taken by another program$(who_has_port "$port"), so" \
            "speedmimi cannot listen there: stop that program, then run 'make demo' again"
        fi
      done
      die "speedmimi exited during start-up (status $status; its log is above)"
    fi
    if owns_port "$pid" "$proxy_port"; then
      reply=$(http_get "$proxy_port" /)
      case $reply in
        "Hello from backend"[12]" (port 808"[12]"): GET /") return 0 ;;
      esac
    fi
    nap 0.1
  done
  die "speedmimi did not answer through the demo backends on 127.0.0.1:$proxy_port within 10 s" \
    "(last answer: ${reply:-none})$(who_has_port "$proxy_port")"
}

start_backend 8081 backend1
start_backend 8082 backend2
start_speedmimi

echo
echo "SpeedMimi demo: 127.0.0.1:$proxy_port in front of the backends on 127.0.0.1:8081 and"
echo "127.0.0.1:8082; logs in $prefix/logs."
echo "In another terminal:   curl localhost:$proxy_port/      (Ctrl-C here stops everything)"
echo "The management API:    curl 'localhost:$api_port/api/v1/backends?upstream=demo'"
echo

# Until speedmimi exits (or a signal arrives: the traps then stop everything). wait returns early,
# with a status above 128, only when a trapped signal arrives, and the trap has exited by then.
wait "$speedmimi_pid"
status=$?
echo "run-demo.sh: speedmimi exited (status $status); stopping the demo backends" >&2
exit "$status"
