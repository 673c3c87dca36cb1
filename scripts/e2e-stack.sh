#!/usr/bin/env bash
# Start or stop the end-to-end mail stack by hand (as root, like the e2e tests):
# a throwaway Postfix built from conf/postfix/, an SMTP sink, clamd, spamd and
# `mailadmin serve`, all on free loopback ports under DIR.
#   scripts/e2e-stack.sh start DIR    prints the ports once everything is up
#   scripts/e2e-stack.sh stop DIR
# Send mail with swaks, e.g. swaks --server 127.0.0.1:<main> --to someone@example.jp
# (the printed environment lets `mailadmin` add mailboxes to the same store).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?start|stop}; dir=${2:?directory}
case "$cmd" in
start)
    [ -e "$dir" ] && { echo "$dir exists; choose a new directory" >&2; exit 1; }
    mkdir -p "$(dirname "$dir")"
    log="$dir.log"
    setsid .venv/bin/python -m tests.e2e.run_stack "$dir" >"$log" 2>&1 < /dev/null &
    echo $! > "$dir.pid"
    for _ in $(seq 1 1200); do
        grep -q '^ready$' "$log" 2>/dev/null && { sed '/^ready$/d' "$log"; exit 0; }
        kill -0 "$(cat "$dir.pid")" 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.1
    done
    echo "the stack did not come up; see $log" >&2; exit 1 ;;
stop)
    pid=$(cat "$dir.pid")
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$dir.pid"
    echo "stopped" ;;
*)
    echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
