// The per-token model kernels of the CUDA backend and the KV-cache compaction. Their
// interfaces live beside the kernels (kernels/<op>.h); this header only gathers them for the
// callers that still include it. Activations are fp32 row-major [tokens][width] unless said;
// bf16 arrays are passed as uint16_t bits. Every launcher is asynchronous on `stream` and
// returns the launch's error code; the arguments are checked by the caller (the backend).
#pragma once
#include "kernels/bias_add.h"
#include "kernels/decode_qkv.h"
#include "kernels/embedding.h"
#include "kernels/gemv.h"
#include "kernels/kv_append.h"
#include "kernels/kv_shift.h"
#include "kernels/prefill_attention.h"
#include "kernels/random_fill.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/sampling.h"
#include "kernels/swiglu.h"
