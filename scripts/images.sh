#!/usr/bin/env bash
# `make images`: the refresher, One-Frame emulator and runtime-shim images
# (the crates scripts/images.txt names), built with buildah from static musl
# binaries compiled on this machine, each `FROM scratch` with the binary as its
# only file. Nothing is pulled.
#
#   make images                                   # forex-refresher:<version>, one-frame:<version>, runtime-shim:<version>
#   make images REGISTRY=ghcr.io/<org>            # ... and push ghcr.io/<org>/forex-refresher:<version>, ...
#   make images REGISTRY=127.0.0.1:5000/forex     # loopback registries are pushed to over plain HTTP
#
# Settings (environment, or make variables):
#   REGISTRY               host[:port][/prefix] to push to; empty: build only
#   BUILDAH_ROOT           keep buildah's storage in <dir>/root and <dir>/runroot
#                          instead of its default (/var/lib/containers as root)
#   BUILDAH_STORAGE_DRIVER vfs (default): works everywhere, also without overlay
#   IMAGE_SOURCE           the org.opencontainers.image.source label; default:
#                          the git remote `origin` without credentials
#   SOURCE_DATE_EPOCH      the images' creation time; default: the commit's
#   CARGO                  cargo (default `cargo`)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
CARGO=${CARGO:-cargo}
REGISTRY=${REGISTRY:-}
REGISTRY=${REGISTRY%/}

fail() { echo "make images: $*" >&2; exit 2; }
# Prints a command, then runs it (nothing secret passes through here).
run() { echo "+ $(printf '%q ' "$@")"; "$@"; }

# What the build needs, checked before anything is compiled.
command -v buildah >/dev/null || fail "buildah is not installed (Debian: apt-get install buildah)"
command -v python3 >/dev/null || fail "python3 is needed to read Cargo metadata"
sysroot=$("${RUSTC:-rustc}" --print sysroot)
[ -d "$sysroot/lib/rustlib/$TARGET/lib" ] \
  || fail "the Rust target $TARGET is not installed (rustup target add $TARGET)"
# runtime-shim's dependencies compile C (wasmtime's helpers, mimalloc, ring).
[ -n "${CC_x86_64_unknown_linux_musl:-}" ] || command -v musl-gcc >/dev/null \
  || fail "no C compiler for $TARGET: install musl-gcc (Debian: apt-get install musl-tools)"
case "$REGISTRY" in
  *@*|*/*:*|*' '*) fail "REGISTRY=$REGISTRY: give host[:port][/prefix], without a tag or digest (e.g. REGISTRY=ghcr.io/<org>)";;
esac

buildah=(buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")
if [ -n "${BUILDAH_ROOT:-}" ]; then
  mkdir -p "$BUILDAH_ROOT"
  buildah+=(--root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/runroot")
fi

# The images to build are the lines of scripts/images.txt that name a crate's
# directory (the one built from spin.toml is the Spin app, which `make push`
# pushes). Cargo metadata gives where cargo puts binaries (CARGO_TARGET_DIR and
# .cargo/config count) and each crate's package: first the packages to
# compile, in the file's order; then a line an image, in Cargo's order of
# packages, with the image's name and its package's name, version, license and
# description, separated by ASCII unit separators (empty fields survive `read`).
cargo_metadata=$("$CARGO" metadata --no-deps --format-version 1 --locked)
target_dir=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' <<< "$cargo_metadata")
images=$(python3 -c '
import json, os, sys
crates = {}
for line in open(sys.argv[1]):
    words = line.split("#", 1)[0].split()
    if len(words) == 2 and not words[1].endswith(".toml"):
        crates[os.path.realpath(os.path.join(words[1], "Cargo.toml"))] = words[0]
packages = {os.path.realpath(p["manifest_path"]): p for p in json.load(sys.stdin)["packages"]}
missing = [os.path.relpath(os.path.dirname(m)) for m in crates if m not in packages]
if missing or not crates:
    print(f"make images: {sys.argv[1]} names no crate, or one that is no package of the workspace: {missing}", file=sys.stderr)
    sys.exit(2)
print(" ".join(packages[m]["name"] for m in crates))
for manifest, p in packages.items():
    if manifest in crates:
        fields = (crates[manifest], p["name"], p["version"], p["license"] or "", p["description"] or "")
        print("\x1f".join(f.replace("\x1f", " ").replace("\n", " ") for f in fields))
' scripts/images.txt <<< "$cargo_metadata")
packages=()
for package in $(head -n 1 <<< "$images"); do packages+=(-p "$package"); done
images=$(tail -n +2 <<< "$images")

run "$CARGO" build --release --locked --target "$TARGET" "${packages[@]}"

# The commit, `-dirty` when tracked files differ from it (as `git describe
# --dirty`; untracked files do not count). No locks taken: other git
# commands may run at the same time.
export GIT_OPTIONAL_LOCKS=0
if revision=$(git rev-parse HEAD 2>/dev/null); then
  git diff --quiet HEAD -- || revision="$revision-dirty"
  created=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
else
  revision=unknown
  created=${SOURCE_DATE_EPOCH:-}
fi
if [ -z "${IMAGE_SOURCE+set}" ]; then
  # https://user:token@host/x.git -> https://host/x; git@host:x.git -> https://host/x
  IMAGE_SOURCE=$(git remote get-url origin 2>/dev/null \
    | sed -E -e 's#^([a-z+]+://)[^/@]*@#\1#' -e 's#^[^/@:]+@([^:/]+):#https://\1/#' -e 's#\.git$##' || true)
  [ -n "$IMAGE_SOURCE" ] || echo "make images: no git remote 'origin': the label org.opencontainers.image.source is empty (set IMAGE_SOURCE=<repository URL>)"
fi

built=()
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
while IFS=$'\x1f' read -r name package version licenses description; do
  tag="$name:$version"
  # A build context of its own with nothing but the binary.
  rm -rf "${context:?}"/*
  install -m 0755 "$target_dir/$TARGET/release/$package" "$context/$package"
  previous=$("${buildah[@]}" images --quiet --no-trunc "localhost/$tag" 2>/dev/null || true)
  run "${buildah[@]}" bud --isolation chroot --format oci --layers=false \
    ${created:+--timestamp "$created"} \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    --build-arg "SOURCE=$IMAGE_SOURCE" --build-arg "DESCRIPTION=$description" \
    --build-arg "LICENSES=$licenses" \
    -f "docker/$package.scratch.Dockerfile" -t "$tag" "$context"
  # The image the tag named before, now untagged (the build is reproducible:
  # an unchanged binary gives the same image, so this only runs on a change).
  now=$("${buildah[@]}" images --quiet --no-trunc "localhost/$tag")
  if [ -n "$previous" ] && [ "$previous" != "$now" ]; then
    "${buildah[@]}" rmi "$previous" >/dev/null 2>&1 || true
  fi
  built+=("$tag")
done <<< "$images"

for tag in "${built[@]}"; do
  echo "built localhost/$tag (revision $revision)"
done
[ -z "$REGISTRY" ] && exit 0

case "$REGISTRY" in
  127.0.0.1[:/]*|127.0.0.1|localhost[:/]*|localhost) tls=(--tls-verify=false);;
  *) tls=();;
esac
for tag in "${built[@]}"; do
  run "${buildah[@]}" push "${tls[@]}" --digestfile "$context/digest" "$tag" "docker://$REGISTRY/$tag"
  echo "pushed $REGISTRY/$tag@$(cat "$context/digest")"
done
