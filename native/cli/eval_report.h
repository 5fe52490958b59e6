// Results of `tidal eval`: one record per (sample, configuration), saved as tab-separated
// lines so runs on several machines can be merged, and rendered as Markdown tables.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tidal::cli {

struct ConfigKey {
  std::string mode;       // "full", "tidal", "quest"; perplexity also "full-prefill"
  std::string selection;  // tidal selection layers "2,4", else "-"
  int64_t budget = 0;     // 0 for full
  bool operator==(const ConfigKey& o) const { return mode == o.mode && selection == o.selection && budget == o.budget; }
};

struct PasskeyRecord {
  int64_t context = 0;
  double depth = 0.0;
  int64_t trial = 0;
  ConfigKey config;
  bool correct = false;
};

struct PerplexityRecord {
  int64_t window = 0;
  int64_t window_tokens = 0;  // window length
  ConfigKey config;
  double nll = 0.0;           // summed over the scored tokens
  int64_t tokens = 0;
};

struct EvalResults {
  std::vector<PasskeyRecord> passkey;
  std::vector<PerplexityRecord> perplexity;
};

// Tab-separated lines; `append_results` adds the lines of a saved file (throws
// RequestError naming the file and line on a malformed line).
std::string serialize_results(const EvalResults& results);
void append_results(const std::string& text, const std::string& source, EvalResults& results);

// Markdown: full-attention passkey accuracy by context and depth; accuracy of every
// configuration by context; perplexity by configuration; and a summary against the targets
// (`trained_length`: contexts up to it count as within the trained length).
std::string render_report(const EvalResults& results, int64_t trained_length);

}  // namespace tidal::cli
