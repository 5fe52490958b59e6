#!/usr/bin/env bash
# Builds the engine addon to WebAssembly (CPU and WebGPU-tape backends, portable kernels) with
# Debian bookworm's Emscripten 3.1.6 (`apt-get install emscripten`) and emnapi (Node-API for
# Emscripten, from npm). Output: OUT/tidal_native.{js,wasm,worker.js}, which
# src/native/wasmAddon.ts loads.
#   bash native/wasm/build.sh OUT EMNAPI_NODE_MODULES [JOBS] [--tests]
# EMNAPI_NODE_MODULES holds emnapi, @emnapi/runtime and node-addon-api. --tests also builds the
# engine's test programs (native/CMakeLists.txt's tidal_tests and tidal_op_harness) from the
# same engine objects, as programs for Node: OUT/tests/tidal_tests.js, tidal_op_harness.js
# (`node OUT/tests/tidal_tests.js`; files through Node's, NODERAWFS).
set -euo pipefail
tests=0
positional=()
for arg in "$@"; do
  if [ "$arg" = --tests ]; then tests=1; else positional+=("$arg"); fi
done
set -- "${positional[@]}"
here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
modules=$(cd "$2" && pwd)
jobs=${3:-$(nproc)}
emnapi=$modules/emnapi
naa=$modules/node-addon-api
# Debian's emscripten runs its JS tools with `node`; one from outside Debian (NodeSource,
# nvm) does not look in Debian's module folder for acorn (package node-acorn).
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
# A link's log without the warning every pthreads build with memory growth gives.
show_log() { grep -v 'Wpthreads-mem-growth' "$1" || true; }

common=(-O3 -pthread -fexceptions -DBUILDING_NODE_EXTENSION
        '-DNAPI_EXTERN=__attribute__((__import_module__("env")))' -I"$emnapi/include/node")
# emnapi's C part: Node-API on its JS runtime, async work and thread-safe functions on a libuv
# thread pool over pthreads. EMNAPI_USE_PROXYING=0: Emscripten's proxying API is 3.1.9+.
emnapi_sources=(js_native_api node_api async_cleanup_hook async_context async_work threadsafe_function
                uv/uv-common uv/threadpool uv/unix/loop uv/unix/posix-hrtime uv/unix/thread uv/unix/async uv/unix/core)
# WebAssembly SIMD128 for the CPU kernels' vector loops (cpu/dot_kernels.h, under
# __wasm_simd128__). No auto-vectorisation, so the rest compiles as without SIMD: at -O3
# -msimd128, clang 14's SLP vectoriser miscompiles the plain loop of cpu/dot_kernels.h
# (wrong sums with two activation rows and a partial last chunk).
simd_flags=(-msimd128 -fno-slp-vectorize -fno-vectorize)
cxx_flags=(-std=c++17 -fno-math-errno -Wall -Wextra "${simd_flags[@]}" ${TIDAL_WASM_CXXFLAGS:-} -DTIDAL_VERSION="\"$(node -p "require('$native/../package.json').version" 2>/dev/null || echo 0.1.0)\""
           -I"$native/include" -I"$native/src" -I"$naa"
           -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNAPI_CPP_EXCEPTIONS)

mkdir -p "$out/obj"
jobs_file=$out/obj/jobs.txt
: > "$jobs_file"
for s in "${emnapi_sources[@]}"; do
  echo "emcc ${common[*]@Q} -DEMNAPI_USE_PROXYING=0 -c ${emnapi}/src/$s.c -o $out/obj/emnapi_${s//\//_}.o" >> "$jobs_file"
done
# The engine (without src/cuda/) and the addon, as native/CMakeLists.txt builds them.
for f in "$native"/src/*/*.cpp "$native"/addon/*.cpp; do
  case $f in */src/cuda/*) continue ;; esac
  rel=${f#"$native"/}
  obj=$out/obj/${rel//\//_}.o
  echo "em++ ${common[*]@Q} ${cxx_flags[*]@Q} -c ${f@Q} -o ${obj@Q}" >> "$jobs_file"
done
# The test programs' own sources (tests/, the CLI's option parser, bench/, op_harness/), compiled
# in the same run, into OUT/tests/obj (not OUT/obj, which the addon links whole).
test_obj=$out/tests/obj
rm -rf "$out/tests"
if [ "$tests" = 1 ]; then
  mkdir -p "$test_obj"
  test_flags=(-I"$native" -DTIDAL_FIXTURES_DIR="\"$native/../test/fixtures\"")
  for f in "$native"/tests/*.cpp "$native"/cli/cli_arguments.cpp "$native"/bench/*.cpp "$native"/op_harness/*.cpp; do
    rel=${f#"$native"/}
    obj=$test_obj/${rel//\//_}.o
    echo "em++ ${common[*]@Q} ${cxx_flags[*]@Q} ${test_flags[*]@Q} -c ${f@Q} -o ${obj@Q}" >> "$jobs_file"
  done
fi
tr '\n' '\0' < "$jobs_file" | xargs -0 -P "$jobs" -I{} bash -c '{}'
# A failed link must not leave an older build looking current.
rm -f "$out"/tidal_native.*

# Links a test program, in the background: main() on a worker thread (PROXY_TO_PTHREAD), so that
# Node's thread stays free to start the engine's threads and to do the workers' file calls;
# the process exits with main's status.
link_pids=()
link_names=()
link_test_program() {
  local name=$1
  shift
  em++ -O3 -pthread -fexceptions "$out"/obj/src_*.o "$@" -o "$out/tests/$name.js" --pre-js="$here/program_pre.js" \
    -sENVIRONMENT=node -sNODERAWFS=1 -sPROXY_TO_PTHREAD=1 -sEXIT_RUNTIME=1 \
    -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=4GB -sWASM_BIGINT=1 -sTOTAL_STACK=8MB -sDEFAULT_PTHREAD_STACK_SIZE=8MB \
    -sPTHREAD_POOL_SIZE=4 ${TIDAL_WASM_LDFLAGS:-} > "$test_obj/$name.link.log" 2>&1 &
  link_pids+=("$!")
  link_names+=("$name")
}
if [ "$tests" = 1 ]; then
  link_test_program tidal_tests "$test_obj"/tests_*.o "$test_obj"/cli_cli_arguments.cpp.o "$test_obj"/bench_*.o
  link_test_program tidal_op_harness "$test_obj"/op_harness_*.o "$test_obj"/bench_*.o
fi

em++ -O3 -pthread -fexceptions "$out"/obj/*.o -o "$out/tidal_native.js" \
  --js-library="$here/emscripten_compat.js" --js-library="$emnapi/dist/library_napi.js" \
  -sENVIRONMENT=node -sMODULARIZE=1 -sEXPORT_NAME=createTidalNative -sNODERAWFS=1 \
  -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=4GB -sWASM_BIGINT=1 -sTOTAL_STACK=2MB -sDEFAULT_PTHREAD_STACK_SIZE=2MB \
  -sPTHREAD_POOL_SIZE=${TIDAL_WASM_POOL:-8} \
  "-sEXPORTED_FUNCTIONS=['_malloc','_free','_napi_register_wasm_v1','_node_api_module_get_api_version_v1']" \
  "-sEXPORTED_RUNTIME_METHODS=['emnapiInit']" "-sDEFAULT_LIBRARY_FUNCS_TO_INCLUDE=['\$emnapiAddSendListener']" \
  ${TIDAL_WASM_LDFLAGS:-} > "$out/obj/link.log" 2>&1 || { show_log "$out/obj/link.log" >&2; exit 1; }
show_log "$out/obj/link.log"
test -f "$out/tidal_native.wasm"
ls -l "$out"/tidal_native.*
if [ "$tests" = 1 ]; then
  for i in "${!link_pids[@]}"; do
    name=${link_names[$i]}
    wait "${link_pids[$i]}" || { show_log "$test_obj/$name.link.log" >&2; exit 1; }
    show_log "$test_obj/$name.link.log"
  done
  ls -l "$out"/tests/*.js
fi
