#!/usr/bin/env bash
# Installs what keyless needs on a fresh Debian machine: system packages (as root), a virtualenv in
# .venv, and the package itself in editable mode. Safe to run again: it skips what is already there.
#   scripts/install.sh          runtime only (the demo)
#   scripts/install.sh --test   plus the test tools and the official Azure SDKs used as oracles
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# Debian packages, checked and installed in one apt run:
# - MIT Kerberos (klist, libkrb5 headers for the krb5/gssapi bindings) for the SMB ticket work;
# - libsecret for AzCopy (tests and benchmarks);
# - a C compiler for the drop-in libazfilesauth.so (native/);
# - with --test: systemd-analyze (Debian's systemd package), which checks the systemd units keyless ships,
#   and binutils (readelf) for the shared library's SONAME test.
apt_packages=(krb5-user libkrb5-dev libsecret-1-0 gcc libc6-dev)
[ "$want_test" = "1" ] && apt_packages+=(systemd binutils)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = "0" ]; then
        echo "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "note: Debian packages missing (${missing[*]}); run as root or: sudo apt-get install ${missing[*]}" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The SMB side (and its MIT Kerberos bindings) is the "smb" extra: always wanted on Linux.
extras="[smb]"
[ "$want_test" = "1" ] && extras="[smb,test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import keyless" # fail loudly if the install did not take

# AzCopy, an independent checker of the emulator in the tests and a peer in the benchmarks.
if [ "$want_test" = "1" ] && ! ls .cache/azcopy/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy* >/dev/null 2>&1; then
    if command -v npm >/dev/null 2>&1; then
        echo "installing AzCopy (npm @azure-tools/azcopy-linux) into .cache/azcopy"
        npm install --silent --no-audit --no-fund --prefix .cache/azcopy @azure-tools/azcopy-linux >/dev/null
    else
        echo "note: npm is missing, so AzCopy cannot be installed; its tests will fail" >&2
    fi
fi

# Build the drop-in libazfilesauth.so into native/build/; `keyless smb install-lib` copies it to where
# Microsoft's azfilesauthmanager looks for it.
if command -v "${CC:-gcc}" >/dev/null 2>&1; then
    native/build.sh "$PWD/.venv/bin/keyless-azfilesauth-lib" >/dev/null
else
    echo "note: no C compiler, so libazfilesauth.so is not built" >&2
fi
