// Ranges of the numeric engine options, shared by the command line (native/cli) and the N-API
// addon (native/addon/convert.cpp), so the CLI and the extension refuse the same values. The
// CLI-only ones (benchmark and evaluation sizes) are bounded likewise.
#pragma once
#include <cstdint>
#include <limits>

namespace tidal::limits {

// Engine options.
constexpr int64_t kMaxThreads = 1024;              // 0 = every hardware thread
constexpr int64_t kMaxContext = int64_t(1) << 24;  // 0 = the model's maximum
constexpr int64_t kMaxPrefillChunk = int64_t(1) << 16;
constexpr int64_t kMaxKvBytes = int64_t(1) << 50;  // 0 = no cap

// Attention options.
constexpr int64_t kMaxTokenBudget = int64_t(1) << 24;  // at least 1
constexpr int64_t kMaxDenseLayers = 4096;
constexpr int64_t kMaxLayerIndex = 4095;
constexpr int64_t kMaxCorrectionInterval = int64_t(1) << 20;

// Generation and sampling options.
constexpr int64_t kMaxNewTokens = int64_t(1) << 20;
constexpr double kMaxTemperature = 100.0;             // 0 = greedy
constexpr int64_t kMaxTopK = int64_t(1) << 24;        // 0 = all
constexpr int64_t kMaxSeed = (int64_t(1) << 53) - 1;  // what a JS number holds exactly
constexpr int64_t kMaxTokenId = std::numeric_limits<int32_t>::max();

// Benchmark and evaluation sizes.
constexpr int64_t kMaxCount = int64_t(1) << 20;  // trials, windows, decode steps
constexpr int64_t kMaxDistractors = 1024;
constexpr int64_t kMaxPositions = int64_t(1) << 26;  // as config.json's max_position_embeddings

}  // namespace tidal::limits
