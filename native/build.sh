#!/usr/bin/env bash
# Build libazfilesauth.so.0.0.0 (SONAME libazfilesauth.so.0) and its symlinks into native/build/.
# Usage: native/build.sh HELPER_PATH   (the keyless-azfilesauth-lib the library will run)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
helper="${1:?usage: native/build.sh /path/to/keyless-azfilesauth-lib}"
out="${OUT:-$here/build}"
mkdir -p "$out"
cc="${CC:-gcc}"
"$cc" -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -pthread -fvisibility=hidden -D_FORTIFY_SOURCE=2 \
    -I"$here/include" -DKEYLESS_HELPER="\"$helper\"" \
    -shared -Wl,-soname,libazfilesauth.so.0 -Wl,-z,relro,-z,now \
    -o "$out/libazfilesauth.so.0.0.0" "$here/azfilesauth.c"
ln -sf libazfilesauth.so.0.0.0 "$out/libazfilesauth.so.0"
ln -sf libazfilesauth.so.0 "$out/libazfilesauth.so"
echo "$out/libazfilesauth.so.0.0.0"
