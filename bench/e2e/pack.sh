#!/usr/bin/env bash
# Packs what the GPU machine needs for bench/e2e/run_gpu.sh into .carry/e2e/ (ignored by git;
# name .carry/e2e in the run's carry): Node (English-only ICU data, stripped, xz), the native
# addon with the CUDA backend (stripped, xz) and the bundled replay. From the repository root:
#
#   bash bench/e2e/pack.sh            # build the addon, bundle, pack; print what will travel
#   bash bench/e2e/pack.sh --smoke    # then run run_gpu.sh here on the CPU with the tiny model
#
# Options: --no-build (use native/build as it is), --node PATH (default: the node on PATH),
# --smoke, --eval (pack .carry/eval for tools/train/run_long_gpu.sh instead: Node, the addon and
# the self-contained dist/tidal-eval.js, without the replay). What travels (tracked files, untracked files not ignored, carried folders) must stay
# under 64 MiB; the tracked tree alone is about 42 MiB, so the carry has about 20 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=1
SMOKE=0
EVAL=0
NODE_BIN=$(command -v node)
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --smoke) SMOKE=1 ;;
    --eval) EVAL=1 ;;
    --node) NODE_BIN=$2; shift ;;
    *) echo "pack: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

CARRY=.carry/e2e
[ "$EVAL" = 1 ] && CARRY=.carry/eval
mkdir -p "$CARRY"
if ! git check-ignore -q "$CARRY"; then
  echo "pack: $CARRY is not ignored by git; add the line /.carry/ to .git/info/exclude" >&2
  exit 2
fi

# The addon, with the CUDA backend compiled in (nvcc is here).
if [ "$BUILD" = 1 ]; then
  node scripts/build-native.mjs
fi
ADDON=native/build/Release/tidal_native.node
BACKENDS=$(node -e "console.log(require('./$ADDON').compiledBackends().join(','))")
case ",$BACKENDS," in
  *,cuda,*) echo "pack: addon backends: $BACKENDS" ;;
  *) echo "pack: $ADDON has no CUDA backend ($BACKENDS); build it where nvcc is" >&2; exit 1 ;;
esac
# The engine calls the repository needs (moving KV, saving and loading it) must be there.
CHECK_MODEL=$(mktemp -d /tmp/tidal-e2e-check-XXXXXX)
python3 bench/e2e/make_model.py --out "$CHECK_MODEL" --tiny > /dev/null
node -e '
  const addon = require(process.argv[1]);
  addon.loadModel(process.argv[2], { backend: "cpu", threads: 1, maxContext: 256 }).then(async (engine) => {
    const missing = ["compactSequence", "saveSequence", "loadSequence"].filter((name) => typeof engine[name] !== "function");
    await engine.unload();
    if (missing.length) { console.error(`pack: the addon has no ${missing.join(", ")}: build it from a tree that has them`); process.exit(1); }
  });' "./$ADDON" "$CHECK_MODEL" || { rm -rf "$CHECK_MODEL"; exit 1; }
rm -rf "$CHECK_MODEL"
strip --strip-unneeded -o "$CARRY/tidal_native.node" "$ADDON"
xz -9e --x86 --lzma2=preset=9e -f "$CARRY/tidal_native.node"

# The eval bundle (dist/tidal-eval.js needs nothing but the addon), or the replay, one CommonJS
# file with its dependencies; @huggingface/jinja goes in as text, as in the extension's bundles
# (esbuild.mjs), because chat templates render in a worker thread and the GPU machine has no
# node_modules.
if [ "$EVAL" = 1 ]; then
  node esbuild.mjs > /dev/null
  xz -9e -c dist/tidal-eval.js > "$CARRY/tidal-eval.js.xz"
else
  CARRY="$CARRY" node --input-type=module -e '
  import * as esbuild from "esbuild";
  const jinja = await esbuild.build({ stdin: { contents: "export * from \"@huggingface/jinja\";", resolveDir: process.cwd() },
    bundle: true, platform: "node", target: "node20", format: "iife", globalName: "tidalJinja", minify: true, write: false, logLevel: "warning" });
  await esbuild.build({ entryPoints: ["bench/e2e/replay.ts"], bundle: true, platform: "node", target: "node20", format: "cjs",
    outfile: `${process.env.CARRY}/replay.js`, define: { TIDAL_JINJA_BUNDLE: JSON.stringify(jinja.outputFiles[0].text) }, logLevel: "warning" });
  '
fi

# Node: made once per binary (it takes a minute), kept while the binary is the same.
NODE_ID="$("$NODE_BIN" --version) $(sha1sum "$NODE_BIN" | cut -c1-16)"
if [ ! -f "$CARRY/node.xz" ] || [ "$(cat "$CARRY/node.id" 2>/dev/null)" != "$NODE_ID" ]; then
  python3 bench/e2e/trim_node.py "$NODE_BIN" "$CARRY/node"
  "$CARRY/node" -e 'if (!/\p{L}/u.test("é") || "ﬁ".normalize("NFKC") !== "fi") process.exit(1)'
  xz --x86 --lzma2=preset=9e,dict=128MiB -T1 -f "$CARRY/node"
  echo "$NODE_ID" > "$CARRY/node.id"
fi

ls -la "$CARRY"
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

if [ "$SMOKE" = 1 ]; then
  # run_gpu.sh itself, on the CPU, with the tiny model and a small repository part.
  SMOKE_OUT=$(mktemp -d /tmp/tidal-e2e-smoke-XXXXXX)
  OUT="$SMOKE_OUT" E2E_BACKEND=cpu E2E_TINY=1 E2E_DROP_CACHES=0 E2E_TARGET_TOKENS=${E2E_TARGET_TOKENS:-3000} E2E_WORK="$SMOKE_OUT/work" \
    E2E_EXTRA="--threads 2 --max-context 16384 --keystrokes 12 ${E2E_EXTRA:-}" bash bench/e2e/run_gpu.sh
  rm -rf "$SMOKE_OUT/work"
  echo "pack: smoke run's results in $SMOKE_OUT"
fi
