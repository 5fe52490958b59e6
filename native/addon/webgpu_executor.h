// The WebGPU executor the addon hands to the engine: runs a recorded tape by calling the
// JavaScript device (src/webgpu/) on the JS thread and blocking the engine's worker thread
// until the device has run it and its reads are back.
#pragma once
#include <napi.h>

#include <memory>

#include "webgpu/webgpu_tape.h"

namespace tidal_addon {

// `device` is { execute(words: Uint32Array, uploads: ArrayBuffer[]): Promise<ArrayBuffer[]>,
// maxBindingBytes: number }. Throws a JS TypeError for anything else.
std::shared_ptr<tidal::WebGpuExecutor> CreateWebGpuExecutor(Napi::Env env, Napi::Value device);

}  // namespace tidal_addon
