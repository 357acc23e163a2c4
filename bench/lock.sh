# Sourced by the timed benchmarks (callback.sh, dialplan.sh, webrtc.sh):
# the lock files that keep two timed runs from sharing the machine, and a
# bounded wait for the other one.
LOCK_OTHER=/tmp/ringback-bench.lock   # another engineer's timed runs
LOCK_MINE=/tmp/ringback-bench-b.lock  # ours

wait_for_other_lock() { # bounded: at most 60 minutes
  local i
  for i in $(seq 120); do
    [[ -e "$LOCK_OTHER" ]] || return 0
    echo "  $LOCK_OTHER exists (another benchmark is running); waiting..."
    sleep 30
  done
  echo "$LOCK_OTHER still there after 60 minutes; giving up" >&2
  exit 1
}

# Before a timed step: wait for the other lock and a quiet machine, then
# hold ours (HAVE_LOCK says so, for the cleanup).
take_lock() { wait_for_other_lock; wait_quiet; touch "$LOCK_MINE"; HAVE_LOCK=1; }
drop_lock() { rm -f "$LOCK_MINE"; HAVE_LOCK=""; }
