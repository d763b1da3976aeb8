#!/bin/bash
# run-demo.sh BUILDDIR SRCDIR — what `make demo` runs.
# Starts two demo backends (127.0.0.1:8081 "backend1", 127.0.0.1:8082 "backend2"), then speedmimi
# in the foreground with SRCDIR/conf/demo.yaml and the prefix BUILDDIR/demo-prefix (logs go to
# BUILDDIR/demo-prefix/logs). Ctrl-C stops speedmimi, and the backends go with it.
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

for f in "$speedmimi" "$demo_backend"; do
  if [ ! -x "$f" ]; then
    echo "run-demo.sh: $f is missing: run 'make' first" >&2
    exit 1
  fi
done
mkdir -p "$prefix/logs" || exit 1

backend_pids=()
cleanup() {
  for pid in "${backend_pids[@]}"; do
    kill "$pid" 2>/dev/null
  done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits (at most 5 s) until something accepts on 127.0.0.1:$1, while process $2 lives.
wait_for_port() {
  for _ in $(seq 50); do
    kill -0 "$2" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

for spec in 8081:backend1 8082:backend2; do
  port=${spec%%:*}
  name=${spec#*:}
  "$demo_backend" "$port" "$name" &
  backend_pids+=($!)
  if ! wait_for_port "$port" "$!"; then
    echo "run-demo.sh: the demo backend $name did not start on port $port (is it in use?)" >&2
    exit 1
  fi
done

echo
echo "SpeedMimi demo: backends on 127.0.0.1:8081 and 127.0.0.1:8082, logs in $prefix/logs."
echo "In another terminal:   curl localhost:8080/      (Ctrl-C here stops everything)"
echo
"$speedmimi" -c "$config" -p "$prefix"
