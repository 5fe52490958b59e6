// Header-only model inspection for JS: what a model folder or .gguf file holds and what is
// wrong with it (inspectModel), and a GGUF file's tokenizer metadata (readGgufTokenizer),
// both read by the engine's own parsers (native/src/model/). Synchronous: they read headers
// only, milliseconds even for a file of many gigabytes.
#pragma once
#include <napi.h>

namespace tidal_addon {

// inspectModel(path: string): ModelInspection (see src/native/addon.ts). Never throws for a
// broken model: its problems are in the result's `problems`. TypeError for a bad argument.
Napi::Value InspectModel(const Napi::CallbackInfo& info);

// readGgufTokenizer(path: string): GgufTokenizerMetadata. Throws an Error with code
// ERR_TIDAL_MODEL for a missing or malformed file or malformed tokenizer.* metadata.
Napi::Value ReadGgufTokenizer(const Napi::CallbackInfo& info);

}  // namespace tidal_addon
