#!/usr/bin/env bash
# Nightly amlport backup: backup -> verify the new snapshot -> retention, for cron (cron.md).
#
# Configuration (environment, e.g. from /etc/amlport/backup.env):
#   AMLPORT_SOURCE      workspace storage: https://<account>.blob.core.windows.net
#   AMLPORT_REPO        the backup repository (a folder on a disk in another region)
#   AMLPORT_AUTH        credential options, default "--credential default" (managed identity)
#   AMLPORT_KEEP        retention, default "--keep-daily 7 --keep-weekly 5 --keep-monthly 12"
#   AMLPORT_LOG_DIR     where the JSON reports go, default $AMLPORT_REPO/../logs
#   HEALTHCHECK_URL     optional: pinged on success, "<url>/fail" on failure
#
# Exit status (what cron mails or your monitoring sees), from amlport's own codes
# (docs/exit-codes.md):
#   0  snapshot written and verified, retention applied
#   1  same, but the backup reported warnings (skipped items): look at the JSON report
#   2  nothing was backed up: bad configuration, storage unreachable or forbidden, repository
#      locked longer than --retry-lock
#   3  partial: some blobs could not be read; the snapshot of the rest is written and marked
#      incomplete. Tomorrow's run reads what is missing again.
#   4  integrity: the new snapshot failed verification (or prune found a damaged snapshot)
set -uo pipefail

: "${AMLPORT_SOURCE:?set AMLPORT_SOURCE to the workspace storage account URL}"
: "${AMLPORT_REPO:?set AMLPORT_REPO to the backup repository folder}"
# AMLPORT_AUTH set but empty: no option (the connection string comes from the environment)
AUTH=${AMLPORT_AUTH---credential default}
KEEP=${AMLPORT_KEEP:---keep-daily 7 --keep-weekly 5 --keep-monthly 12}
LOG_DIR=${AMLPORT_LOG_DIR:-$(dirname "$AMLPORT_REPO")/logs}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$LOG_DIR"

ping_health() {  # $1: "" on success, "/fail" on failure
    if [ -n "${HEALTHCHECK_URL:-}" ]; then
        curl -fsS -m 10 --retry 3 "${HEALTHCHECK_URL}$1" >/dev/null || true
    fi
}

fail() {  # $1: exit code, $2: message
    echo "amlport-backup: $2 (exit $1)" >&2
    ping_health /fail
    exit "$1"
}

# 1. Backup. --retry-lock waits for a forget/prune still running from an earlier night.
# shellcheck disable=SC2086  # AUTH holds several words on purpose
amlport backup "$AMLPORT_SOURCE" --repo "$AMLPORT_REPO" $AUTH --tag nightly \
    --retry-lock 1800 --json >"$LOG_DIR/backup-$STAMP.json" 2>"$LOG_DIR/backup-$STAMP.log"
rc=$?
case $rc in
    0) ;;
    1) echo "amlport-backup: done with warnings, see $LOG_DIR/backup-$STAMP.log" >&2 ;;
    3) echo "amlport-backup: partial backup, see $LOG_DIR/backup-$STAMP.log" >&2 ;;
    *) fail "$rc" "backup failed, see $LOG_DIR/backup-$STAMP.log" ;;
esac

# 2. Verify the snapshot just written (every object present and hashing right);
#    on Sundays the whole repository.
snapshot=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"] or "")' \
    <"$LOG_DIR/backup-$STAMP.json") || fail 2 "cannot read the backup report"
if [ "$(date -u +%u)" = 7 ]; then
    amlport verify "$AMLPORT_REPO" >"$LOG_DIR/verify-$STAMP.log" 2>&1
else
    amlport verify "$AMLPORT_REPO" --snapshot "$snapshot" >"$LOG_DIR/verify-$STAMP.log" 2>&1
fi
vrc=$?
[ "$vrc" -eq 0 ] || fail "$vrc" "verify failed, see $LOG_DIR/verify-$STAMP.log"

# 3. Retention, and free what no kept snapshot references.
# shellcheck disable=SC2086  # KEEP holds several options on purpose
amlport forget "$AMLPORT_REPO" $KEEP --prune --retry-lock 1800 \
    >"$LOG_DIR/forget-$STAMP.log" 2>&1 || fail $? "forget/prune failed, see $LOG_DIR/forget-$STAMP.log"

if [ "$rc" -eq 3 ]; then
    fail 3 "snapshot $snapshot is incomplete"
fi
ping_health ""
exit "$rc"
