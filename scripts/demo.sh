#!/usr/bin/env bash
# The demo: start a local Azure (the keyless emulator), run the managed-identity access test against it
# exactly as on an Azure VM (token from IMDS, create a directory, write and read back a file over
# Azure Files REST with OAuth), then stop the emulator. No Azure subscription, no keys.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

work=$(mktemp -d)
data="$work/emulator"
.venv/bin/keyless emulator --data "$data" &
emulator_pid=$!
cleanup() {
    kill -TERM "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
    [ -f "$data/emulator.json" ] && break
    kill -0 "$emulator_pid" 2>/dev/null || { echo "the emulator failed to start" >&2; exit 1; }
    sleep 0.1
done
[ -f "$data/emulator.json" ] || { echo "the emulator did not become ready" >&2; exit 1; }

echo
echo "\$ keyless test --emulator $data --account devaccount --share demo"
.venv/bin/keyless test --emulator "$data" --account devaccount --share demo
