// The seam between the host-side wrappers (native/src/cuda/*.cpp: argument checks, launch
// planning) and the attention-family kernels (decode attention, top-k selection, Quest pages).
// Their interfaces live beside the kernels (kernels/<op>.h); this header only gathers them for
// the callers that still include it.
#pragma once
#include "kernels/decode_attention.h"
#include "kernels/quest_pages.h"
#include "kernels/topk_select.h"
