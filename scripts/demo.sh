#!/usr/bin/env bash
# make demo: the whole story on the shipped designer workspace, no cloud, about 15 seconds.
#
#   back up -> change one file -> back up again -> diff -> restore --check into a renamed
#   workspace -> audit -> report.html
#
# Usage: scripts/demo.sh [AMLPORT] [OUT_DIR]   (defaults: .venv/bin/amlport, build/demo)
# Everything is done on a copy in a temporary folder: fixtures/ is never modified. The report
# is written to OUT_DIR/report.html (self-contained: open it in any browser, offline).
set -euo pipefail

AMLPORT=${1:-.venv/bin/amlport}
OUT=${2:-build/demo}
FIXTURE=fixtures/workspaces/designer-autoprice
PY=$(dirname "$AMLPORT")/python
[ -x "$PY" ] || PY=python3

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/amlport-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export AMLPORT_CACHE_DIR="$WORK/cache"  # the demo leaves no read cache behind
WS=$WORK/autoprice  # the "dev" workspace (a copy of the fixture)
REPO=$WORK/backups  # the backup repository
QA=$WORK/qa         # the renamed workspace restored into
cp -R "$FIXTURE" "$WS"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# run EXPECTED_CODES... -- amlport ARGS: a demo step whose documented exit codes are fine
# (1 = warnings or differences, 5 = audit policy failures); anything else stops the demo.
run() {
  local ok=() rc=0
  while [ "$1" != "--" ]; do ok+=("$1"); shift; done
  shift
  printf '$ amlport %s\n' "$*" >&2
  "$AMLPORT" "$@" || rc=$?
  for code in "${ok[@]}"; do [ "$rc" = "$code" ] && return 0; done
  echo "demo: 'amlport $*' exited $rc" >&2
  exit "$rc"
}
snapshot_id() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d.get("snapshot") or d["snapshot_id"])'; }

step "1. Back up the designer workspace (Regression - Automobile Price Prediction)"
run 0 1 -- backup "$WS" --repo "$REPO" --tag before --json >"$WORK/first.json"
FIRST=$(snapshot_id <"$WORK/first.json")
echo "snapshot ${FIRST:0:16}"

step "2. Change one file: pin azureml-defaults in the trained model's conda environment"
ENV_FILE=$WS/azureml/ExperimentRun/dcid.a79bd916-2790-4202-89ed-fbdede3ccf1d/trained_model_outputs/conda_env.yaml
sed -i.bak 's/^  - azureml-defaults$/  - azureml-defaults==1.57.0/' "$ENV_FILE" && rm "$ENV_FILE.bak"
grep -n 'azureml-defaults' "$ENV_FILE"

step "3. Back up again (incremental: only the changed file is read and stored)"
run 0 1 -- backup "$WS" --repo "$REPO" --tag after

step "4. What changed between the two snapshots"
run 0 1 -- diff "$REPO@${FIRST:0:16}" "$REPO"

step "5. Restore the latest snapshot into a renamed workspace, and prove it (--check)"
cat >"$WORK/qa.yaml" <<'EOF'
source: azmlfromscratchstr/azml-from-scratch
target:
  account: stautopriceqa01
  endpoint: core.windows.net
  subscription_id: 11111111-2222-3333-4444-555555555555
  resource_group: rg-ml-qa
  workspace: mlw-autoprice-qa
  containers:
    blobstore: azureml-blobstore-99999999-8888-7777-6666-555555555555
    artifacts: azureml
  datastores:
    workspaceblobstore: azureml-blobstore-99999999-8888-7777-6666-555555555555
    workspaceartifactstore: azureml
datastores:
  workspaceblobstore: workspaceblobstore
  workspaceartifactstore: workspaceartifactstore
EOF
run 0 -- restore "$REPO" latest --to "$QA" --map "$WORK/qa.yaml" --check

step "6. Audit the workspace (resilience settings need --arm or --arm-live; hygiene is read from storage)"
run 0 1 5 -- audit "$WS"

step "7. One HTML report: inventory, lineage graph, pipelines, audit, snapshot history"
run 0 -- report "$WS" --repo "$REPO" -o "$OUT/report.html"

REPORT=$(cd "$OUT" && pwd)/report.html
printf '\n\033[1mOpen the report:\033[0m file://%s\n' "$REPORT"
