// --pre-js of the test programs (native/wasm/build.sh --tests). Emscripten 3.1.6 would fetch()
// the .wasm where a global fetch exists (Node 18 and later), which refuses a file path: the
// main thread reads it from the program's folder instead (its workers get the compiled module).
if (!Module['ENVIRONMENT_IS_PTHREAD']) {
  Module['wasmBinary'] = require('fs').readFileSync(__filename.replace(/\.js$/, '.wasm'));
}
