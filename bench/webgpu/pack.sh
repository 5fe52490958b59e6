#!/usr/bin/env bash
# Packs what the GPU machine needs for bench/webgpu/run_gpu.sh into .carry/webgpu/ (ignored by
# git through /.carry/ in .git/info/exclude; name .carry/webgpu in the run's carry): Node (English
# ICU data only, stripped, xz), the native addon with the CUDA and webgpu backends (stripped, xz),
# the bundled benchmark, the `webgpu` package's dawn.node for linux-x64 (xz) and the Vulkan loader
# (libvulkan1 and the GL vendor-neutral libraries as .debs: NVIDIA's Vulkan driver is
# libGLX_nvidia.so.0, which needs libGLdispatch; the GPU machine has the driver but may lack
# the loaders). From the
# repository root, where nvcc is:
#
#   bash bench/webgpu/pack.sh            # build the addon, bundle, pack; print what will travel
#
# Options: --no-build (use native/build as it is), --node PATH (default: the node on PATH).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=1
NODE_BIN=$(command -v node)
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --node) NODE_BIN=$2; shift ;;
    *) echo "pack: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

CARRY=.carry/webgpu
mkdir -p "$CARRY"
if ! git check-ignore -q "$CARRY"; then
  echo "pack: $CARRY is not ignored by git; add the line /.carry/ to .git/info/exclude" >&2
  exit 2
fi

if [ "$BUILD" = 1 ]; then
  # CUDA on explicitly: a build folder configured without it keeps that setting otherwise.
  export CUDACXX=${CUDACXX:-/usr/local/cuda/bin/nvcc}
  if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
  node node_modules/cmake-js/bin/cmake-js compile --directory native --out native/build \
    --parallel "$(nproc)" --CDTIDAL_CUDA=ON
fi
ADDON=native/build/Release/tidal_native.node
BACKENDS=$(node -e "console.log(require('./$ADDON').compiledBackends().join(','))")
case ",$BACKENDS," in
  *,cuda,*webgpu*|*webgpu*,cuda,*) echo "pack: addon backends: $BACKENDS" ;;
  *) echo "pack: $ADDON lacks the cuda or webgpu backend ($BACKENDS); build it here, where nvcc is" >&2; exit 1 ;;
esac
strip --strip-unneeded -o "$CARRY/tidal_native.node" "$ADDON"
xz --x86 --lzma2=preset=9e -f "$CARRY/tidal_native.node"

node_modules/.bin/esbuild bench/webgpu/decodeStep.ts --bundle --platform=node --format=cjs --target=node20 \
  --external:webgpu --outfile="$CARRY/decode-step.js" --log-level=warning

mkdir -p "$CARRY/webgpu"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$CARRY/webgpu/"
if [ ! -f "$CARRY/webgpu/dawn.node.xz" ] || [ node_modules/webgpu/dist/linux-x64/dawn.node -nt "$CARRY/webgpu/dawn.node.xz" ]; then
  xz --x86 --lzma2=preset=9e -T2 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$CARRY/webgpu/dawn.node.xz"
fi

# The Vulkan loader, for amd64 whatever this machine is (the GPU machine's notes say how).
if ! ls "$CARRY"/libglvnd0_*.deb >/dev/null 2>&1; then
  LISTS=$(mktemp -d /tmp/tidal-apt-XXXXXX)
  mkdir -p "$LISTS/partial"
  APT_OPTS=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists="$LISTS")
  apt-get "${APT_OPTS[@]}" update -qq
  (cd "$CARRY" && apt-get "${APT_OPTS[@]}" download libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2)
  rm -rf "$LISTS"
fi

# Node: made once per binary (a minute), kept while the binary is the same.
NODE_ID="$("$NODE_BIN" --version) $(sha1sum "$NODE_BIN" | cut -c1-16)"
if [ ! -f "$CARRY/node.xz" ] || [ "$(cat "$CARRY/node.id" 2>/dev/null)" != "$NODE_ID" ]; then
  python3 bench/e2e/trim_node.py "$NODE_BIN" "$CARRY/node"
  xz --x86 --lzma2=preset=9e,dict=128MiB -T1 -f "$CARRY/node"
  echo "$NODE_ID" > "$CARRY/node.id"
fi

ls -la "$CARRY" "$CARRY/webgpu"
CARRY_BYTES=$(du -sb "$CARRY" | cut -f1)
TRACKED_BYTES=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
UNTRACKED_BYTES=$(git ls-files -z --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
TOTAL=$((CARRY_BYTES + TRACKED_BYTES + UNTRACKED_BYTES))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "pack: carry $(mib "$CARRY_BYTES"); with the tracked files ($(mib "$TRACKED_BYTES")) and untracked ones ($(mib "$UNTRACKED_BYTES")) $(mib "$TOTAL") travel, of 64 MiB"
if [ "$TOTAL" -gt $((63 * 1048576)) ]; then
  echo "pack: too close to the 64 MiB limit" >&2
  exit 1
fi
