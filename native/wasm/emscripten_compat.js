// A JS library passed to emcc before emnapi's (--js-library, in that order) when the compiler is
// Debian bookworm's Emscripten 3.1.6. emnapi's library is written for Emscripten >= 3.1.9. This
// file is JavaScript that Emscripten's JS compiler runs while it reads the libraries (it adds
// nothing to the output); it teaches 3.1.6 what emnapi's library expects of newer versions:
//  - the unsigned heap types 'u8', 'u16', 'u32' and 'u64' in makeGetValue / makeSetValue;
//  - getUnsharedTextDecoderView and POINTER_WASM_TYPE (wasm32: 'i32');
//  - library values given as strings such as "undefined" or "0" (a variable's initial value):
//    3.1.6 takes a string without '=' as the name of another library entry (an alias), newer
//    versions only when such an entry exists; here they get 3.1.6's '=' prefix for a value.
(function () {
  if (globalThis.__tidalEmscriptenCompat) return;
  globalThis.__tidalEmscriptenCompat = true;
  const signedOf = { u8: 'i8', u16: 'i16', u32: 'i32', u64: 'i64' };
  const get = globalThis.makeGetValue;
  globalThis.makeGetValue = function (ptr, pos, type, noNeedFirst, unsigned, ...rest) {
    if (signedOf[type]) return get(ptr, pos, signedOf[type], noNeedFirst, true, ...rest);
    return get(ptr, pos, type, noNeedFirst, unsigned, ...rest);
  };
  const set = globalThis.makeSetValue;
  globalThis.makeSetValue = function (ptr, pos, value, type, ...rest) {
    return set(ptr, pos, value, signedOf[type] || type, ...rest);
  };
  const heapFor = globalThis.getHeapForType;
  globalThis.getHeapForType = function (type, unsigned) {
    if (signedOf[type]) return heapFor(signedOf[type], true);
    return heapFor(type, unsigned);
  };
  if (typeof globalThis.POINTER_WASM_TYPE === 'undefined') globalThis.POINTER_WASM_TYPE = 'i32';
  if (!globalThis.getUnsharedTextDecoderView) {
    // TextDecoder refuses views of a SharedArrayBuffer: copy (slice) with pthreads.
    globalThis.getUnsharedTextDecoderView = (heap, start, end) =>
      USE_PTHREADS ? `${heap}.slice(${start}, ${end})` : `${heap}.subarray(${start}, ${end})`;
  }
  const merge = globalThis.mergeInto;
  globalThis.mergeInto = function (target, source, ...rest) {
    for (const key of Object.keys(source)) {
      const value = source[key];
      if (typeof value === 'string' && /^[\w.$]+$/.test(value) && !(value in target) && !(value in source)) {
        source[key] = '=' + value;
      }
    }
    return merge(target, source, ...rest);
  };
})();
