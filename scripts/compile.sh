#!/usr/bin/env bash
# Writes ./denovmm, one executable file that runs without Deno installed.
#
#   scripts/compile.sh [--target x86_64|aarch64] [OUT]
#
# --target aarch64 writes ./denovmm-aarch64 for arm64 Linux instead (deno compile --target
# aarch64-unknown-linux-gnu, or the self-extracting form around .tools/arm64/deno, which
# scripts/setup.sh fetches).
#
# The first choice is `deno compile`, which needs Deno's slim runtime (denort): it downloads
# it from dl.deno.land, or takes a local copy from $DENORT_BIN. Where neither is possible
# (this project's machines reach only the npm and Debian registries, and no npm package
# carries denort), it writes a self-extracting executable instead: a short sh launcher
# followed by a gzip'd tar of the pinned Deno binary and denovmm's sources, unpacked once
# into ~/.cache/denovmm/<hash>/ and run from there. Either way: one file, no Deno needed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
deno=${DENO:-$repo/.tools/deno}
# The host's own target unless asked: ./denovmm, with the Deno that runs this script.
host=$(uname -m)
target=$host
if [[ ${1:-} == --target ]]; then target=${2:-} && shift 2; fi
case $target in
x86_64 | x86_64-unknown-linux-gnu) target=x86_64 guest=.cache/guest/vmlinuz ;;
aarch64 | arm64 | aarch64-unknown-linux-gnu) target=aarch64 guest=.cache/arm64/guest/Image ;;
*) echo "compile: --target is x86_64 or aarch64, not '$target'" >&2 && exit 2 ;;
esac
triple=$target-unknown-linux-gnu
if [[ $target == "$host" ]]; then
  out=${1:-$repo/denovmm} payload_deno=$deno
elif [[ $target == aarch64 ]]; then
  out=${1:-$repo/denovmm-aarch64} payload_deno=$repo/.tools/arm64/deno
  [[ -x $payload_deno ]] || { echo "compile: no $payload_deno: run scripts/setup.sh" >&2; exit 2; }
else
  echo "compile: no $target Deno on this $host host to build with" >&2 && exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/app"

# One JavaScript module per thread, bundled here (deno bundle, whose esbuild comes from the npm
# registry on first use): the main program with the machine it loads for `run`, the vCPU thread
# and the I/O thread. A thread then loads one file instead of about a hundred modules, each
# resolved, read and compiled on its own (measured natively: start to vCPU thread ready 45 -> 29
# ms; under the sandbox's emulated CPU, seconds). The Workers' URLs in the main bundle are
# pointed at their bundles. Where bundling is not possible (no esbuild and no registry), the
# sources go in as they are and run the same, only slower to start.
entry=main.ts
# A character beyond Latin-1 anywhere in a module (a comment that the bundle keeps, "…" say) makes
# V8 hold its whole source as a two-byte string: one in the main bundle's 370 KB cost every run
# 0.5-0.6 MiB of peak RSS (`--version` natively, medians of 20: 36.96 MiB, 36.36 without). They
# become escapes, which mean the same in strings, templates, regular expressions and identifiers,
# and are plain text in comments.
bundle() {
  "$deno" bundle --quiet --platform deno -o "$work/app/$2" "$1" &&
    perl -CSD -pi -e 's/([^\x{00}-\x{ff}])/ord($1) > 0xffff ? sprintf("\\u{%x}", ord($1)) : sprintf("\\u%04x", ord($1))/ge' "$work/app/$2"
}
if bundle main.ts main.js && bundle src/machine/vcpu_thread.ts vcpu_thread.js &&
  bundle src/machine/io_thread.ts io_thread.js; then
  # Every Worker entry (tests/layering_test.ts checks that each is named here).
  for w in src/machine/vcpu_thread.ts src/machine/io_thread.ts; do
    t=$(basename "$w" .ts)
    grep -q "new URL(\"./$t.ts\", import.meta.url)" "$work/app/main.js" ||
      { echo "compile: the main bundle starts no Worker from ./$t.ts: compile.sh needs updating" >&2 && exit 1; }
    sed -i "s|new URL(\"./$t.ts\", import.meta.url)|new URL(\"./$t.js\", import.meta.url)|" "$work/app/main.js"
  done
  entry=main.js
else
  echo "compile: deno bundle failed; the executable carries the sources unbundled" >&2
  rm -f "$work/app/"*.js
  cp -r main.ts deno.json src ffi "$work/app/"
fi

if [[ $entry == main.js ]] && "$deno" compile -A --quiet --no-config --target "$triple" \
  --include "$work/app/vcpu_thread.js" --include "$work/app/io_thread.js" -o "$out" \
  "$work/app/main.js" 2>/tmp/denovmm-compile.$$; then
  rm -f /tmp/denovmm-compile.$$
  echo "compile: wrote $out (deno compile)"
  exit 0
fi
reason=$(grep -oE 'dns error|error sending request|No such file' /tmp/denovmm-compile.$$ 2>/dev/null | head -1 || true)
rm -f /tmp/denovmm-compile.$$
echo "compile: deno compile cannot get its runtime here (${reason:-failed}); writing a self-extracting executable" >&2

cp -L "$payload_deno" "$work/app/deno"
tar -C "$work/app" -czf "$work/payload.tgz" .
hash=$(sha256sum "$work/payload.tgz" | cut -c1-16)

cat >"$work/launcher" <<LAUNCH
#!/bin/sh
# denovmm: a self-extracting executable (the Deno runtime for $triple and denovmm's sources).
set -e
# Where this file is, for its payload and for the default guest next to it. Resolving it forks
# readlink, which shows in start-up under an emulated CPU: only when \$0 is not already an
# absolute path to the file itself (as a PATH lookup or an absolute command gives it).
case \$0 in
  /*) self=\$0 ;;
  *) self=\$(readlink -f "\$0") ;;
esac
[ -L "\$self" ] && self=\$(readlink -f "\$self")
dir="\${XDG_CACHE_HOME:-\${HOME:-/tmp}/.cache}/denovmm/$hash"
if [ ! -x "\$dir/deno" ]; then
  tmp="\$dir.tmp.\$\$"
  mkdir -p "\$tmp"
  tail -c +PAYLOAD_OFFSET "\$self" | tar -xzf - -C "\$tmp"
  rm -rf "\$dir" && mv "\$tmp" "\$dir"
fi
# The default guest next to the executable, as for a compiled binary.
if [ -z "\${DENOVMM_GUEST_DIR:-}" ] && [ -f "\${self%/*}/$guest" ]; then
  export DENOVMM_GUEST_DIR="\${self%/*}/${guest%/*}"
fi
# Two malloc arenas instead of glibc's one per thread that allocates (up to 8 per core): each
# vCPU Worker's thread otherwise gets its own, measured at 4-5 MiB of resident memory with 2
# vCPUs in the sandbox; no thread here allocates on its hot path. The user's value wins.
export MALLOC_ARENA_MAX="\${MALLOC_ARENA_MAX:-2}"
# V8's code cache (in \$dir/.deno) is written once per module, by the first run that ran a VM
# (main.ts), with the bytecode of all that run compiled.
DENO_DIR="\$dir/.deno" DENO_NO_UPDATE_CHECK=1 exec "\$dir/deno" run -A --no-lock --no-config "\$dir/$entry" "\$@"
exit 1
LAUNCH
# The offset is a fixed-width number so that writing it does not move the payload.
size=$(wc -c <"$work/launcher")
offset=$(printf '%014d' $((size + 1)))
sed -i "s/PAYLOAD_OFFSET/$offset/" "$work/launcher"
cat "$work/launcher" "$work/payload.tgz" >"$out.tmp"
chmod +x "$out.tmp"
mv "$out.tmp" "$out"
echo "compile: wrote $out (self-extracting, $triple, $(($(wc -c <"$out") / 1048576)) MiB)"
