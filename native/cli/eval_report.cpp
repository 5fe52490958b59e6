#include "eval_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "tidal/error.h"

namespace tidal::cli {

namespace {

std::string format(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

std::string percent(int64_t hits, int64_t total) {
  return total == 0 ? "-" : format("%.0f%%", 100.0 * static_cast<double>(hits) / static_cast<double>(total));
}

std::string context_name(int64_t context) {
  return context % 1024 == 0 ? std::to_string(context / 1024) + "K" : std::to_string(context);
}

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, sep)) out.push_back(field);
  return out;
}

// Configurations in the order they first appear.
template <typename Records>
std::vector<ConfigKey> configs_of(const Records& records) {
  std::vector<ConfigKey> out;
  for (const auto& r : records)
    if (std::find(out.begin(), out.end(), r.config) == out.end()) out.push_back(r.config);
  return out;
}

struct Tally {
  int64_t hits = 0, total = 0;
  double rate() const { return total ? static_cast<double>(hits) / static_cast<double>(total) : 0.0; }
};

}  // namespace

std::string serialize_results(const EvalResults& results) {
  std::ostringstream out;
  char depth[32];
  for (const PasskeyRecord& r : results.passkey) {
    std::snprintf(depth, sizeof depth, "%.4f", r.depth);
    out << "passkey\t" << r.context << '\t' << depth << '\t' << r.trial << '\t' << r.config.mode << '\t'
        << r.config.selection << '\t' << r.config.budget << '\t' << (r.correct ? 1 : 0) << '\n';
  }
  char nll[64];
  for (const PerplexityRecord& r : results.perplexity) {
    std::snprintf(nll, sizeof nll, "%.9g", r.nll);
    out << "perplexity\t" << r.window << '\t' << r.window_tokens << '\t' << r.config.mode << '\t' << r.config.selection
        << '\t' << r.config.budget << '\t' << nll << '\t' << r.tokens << '\n';
  }
  return out.str();
}

void append_results(const std::string& text, const std::string& source, EvalResults& results) {
  std::istringstream in(text);
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    const std::vector<std::string> f = split(line, '\t');
    try {
      if (f.size() == 8 && f[0] == "passkey") {
        PasskeyRecord r;
        r.context = std::stoll(f[1]);
        r.depth = std::stod(f[2]);
        r.trial = std::stoll(f[3]);
        r.config = {f[4], f[5], std::stoll(f[6])};
        r.correct = f[7] == "1";
        results.passkey.push_back(r);
        continue;
      }
      if (f.size() == 8 && f[0] == "perplexity") {
        PerplexityRecord r;
        r.window = std::stoll(f[1]);
        r.window_tokens = std::stoll(f[2]);
        r.config = {f[3], f[4], std::stoll(f[5])};
        r.nll = std::stod(f[6]);
        r.tokens = std::stoll(f[7]);
        results.perplexity.push_back(r);
        continue;
      }
    } catch (const std::exception&) {
    }
    throw RequestError(source + ":" + std::to_string(number) +
                       ": not a line `tidal eval --save` writes; pass files it wrote to --load");
  }
}

std::string render_report(const EvalResults& results, int64_t trained_length) {
  std::ostringstream out;
  std::set<int64_t> context_set;
  std::set<double> depth_set;
  for (const auto& r : results.passkey) {
    context_set.insert(r.context);
    depth_set.insert(r.depth);
  }
  const std::vector<int64_t> contexts(context_set.begin(), context_set.end());
  const std::vector<double> depths(depth_set.begin(), depth_set.end());
  const std::vector<ConfigKey> configs = configs_of(results.passkey);

  // tally[config index][context] and full-attention tally by (context, depth)
  std::vector<std::map<int64_t, Tally>> by_context(configs.size());
  std::map<std::pair<int64_t, double>, Tally> full_by_depth;
  for (const auto& r : results.passkey) {
    const size_t c = static_cast<size_t>(std::find(configs.begin(), configs.end(), r.config) - configs.begin());
    Tally& t = by_context[c][r.context];
    t.hits += r.correct;
    ++t.total;
    if (r.config.mode == "full") {
      Tally& d = full_by_depth[{r.context, r.depth}];
      d.hits += r.correct;
      ++d.total;
    }
  }

  if (!results.passkey.empty()) {
    out << "### Passkey retrieval, full attention (context x depth)\n\n| context |";
    for (double d : depths) out << " depth " << format("%.0f%%", 100 * d) << " |";
    out << " mean | samples |\n| ---: |";
    for (size_t i = 0; i < depths.size(); ++i) out << " ---: |";
    out << " ---: | ---: |\n";
    for (int64_t context : contexts) {
      out << "| " << context_name(context) << (context > trained_length ? " (beyond training)" : "") << " |";
      Tally all;
      for (double d : depths) {
        const Tally t = full_by_depth[{context, d}];
        out << " " << percent(t.hits, t.total) << " |";
        all.hits += t.hits;
        all.total += t.total;
      }
      out << " " << percent(all.hits, all.total) << " | " << all.total << " |\n";
    }

    out << "\n### Passkey retrieval by attention configuration (mean over depths and trials)\n\n"
        << "| mode | selection layers | budget |";
    for (int64_t context : contexts) out << " " << context_name(context) << " |";
    out << "\n| --- | --- | ---: |";
    for (size_t i = 0; i < contexts.size(); ++i) out << " ---: |";
    out << "\n";
    for (size_t c = 0; c < configs.size(); ++c) {
      out << "| " << configs[c].mode << " | " << configs[c].selection << " | "
          << (configs[c].budget ? std::to_string(configs[c].budget) : std::string("-")) << " |";
      for (int64_t context : contexts) {
        const Tally t = by_context[c][context];
        out << " " << percent(t.hits, t.total) << " |";
      }
      out << "\n";
    }

    // Targets.
    out << "\n### Against the targets\n\n";
    size_t full_index = configs.size();
    for (size_t c = 0; c < configs.size(); ++c)
      if (configs[c].mode == "full") full_index = c;
    std::vector<std::string> selections;
    for (const ConfigKey& k : configs)
      if (k.mode == "tidal" && std::find(selections.begin(), selections.end(), k.selection) == selections.end())
        selections.push_back(k.selection);
    for (int64_t context : contexts) {
      if (full_index == configs.size()) break;
      const Tally full = by_context[full_index][context];
      out << "- " << context_name(context) << ": full attention " << percent(full.hits, full.total);
      if (context <= trained_length) out << (full.rate() >= 0.95 ? " (>= 95%: met)" : " (< 95%: not met)");
      else out << " (beyond the trained length)";
      // The budgets at which a mode is at least as accurate as full attention.
      auto matching = [&](const std::string& mode, const std::string& selection) -> std::string {
        std::string budgets;
        for (size_t c = 0; c < configs.size(); ++c)
          if (configs[c].mode == mode && configs[c].selection == selection) {
            const Tally t = by_context[c][context];
            if (t.total && t.rate() >= full.rate() - 1e-12)
              budgets += (budgets.empty() ? "" : ", ") + std::to_string(configs[c].budget);
          }
        return budgets.empty() ? "none" : budgets;
      };
      if (full.hits == 0) {
        out << "; with nothing retrieved by full attention, the sparse modes are not compared here\n";
        continue;
      }
      out << "; budgets at which it is matched:";
      for (const std::string& s : selections) out << " tidal {" << s << "}: " << matching("tidal", s) << ";";
      out << " quest: " << matching("quest", "-") << "\n";
    }
    for (const std::string& s : selections) {
      int64_t wins = 0, ties = 0, losses = 0;
      for (size_t c = 0; c < configs.size(); ++c) {
        if (configs[c].mode != "tidal" || configs[c].selection != s) continue;
        for (size_t q = 0; q < configs.size(); ++q) {
          if (configs[q].mode != "quest" || configs[q].budget != configs[c].budget) continue;
          for (int64_t context : contexts) {
            if (context > trained_length) continue;
            const double a = by_context[c][context].rate(), b = by_context[q][context].rate();
            (a > b ? wins : a < b ? losses : ties) += 1;
          }
        }
      }
      out << "- tidal {" << s << "} vs quest at equal budget, over (budget, context) cells within the trained length: "
          << wins << " better, "
          << ties << " equal, " << losses << " worse\n";
    }
  }

  if (!results.perplexity.empty()) {
    const std::vector<ConfigKey> ppl_configs = configs_of(results.perplexity);
    std::vector<std::pair<double, int64_t>> sums(ppl_configs.size());
    std::set<int64_t> windows, lengths;
    for (const auto& r : results.perplexity) {
      const size_t c = static_cast<size_t>(std::find(ppl_configs.begin(), ppl_configs.end(), r.config) - ppl_configs.begin());
      sums[c].first += r.nll;
      sums[c].second += r.tokens;
      windows.insert(r.window);
      lengths.insert(r.window_tokens);
    }
    double full_nll = NAN;
    for (size_t c = 0; c < ppl_configs.size(); ++c)
      if (ppl_configs[c].mode == "full" && sums[c].second) full_nll = sums[c].first / static_cast<double>(sums[c].second);
    out << "\n### Held-out code perplexity (teacher-forced decode, " << windows.size() << " windows of "
        << context_name(*lengths.rbegin()) << " tokens, " << (sums.empty() ? 0 : sums[0].second) << " scored tokens)\n\n"
        << "| mode | selection layers | budget | nats/token | perplexity | vs full |\n"
        << "| --- | --- | ---: | ---: | ---: | ---: |\n";
    for (size_t c = 0; c < ppl_configs.size(); ++c) {
      const double nll = sums[c].first / static_cast<double>(std::max<int64_t>(sums[c].second, 1));
      out << "| " << ppl_configs[c].mode << " | " << ppl_configs[c].selection << " | "
          << (ppl_configs[c].budget ? std::to_string(ppl_configs[c].budget) : std::string("-")) << " | "
          << format("%.4f", nll) << " | " << format("%.3f", std::exp(nll)) << " | "
          << (std::isnan(full_nll) ? std::string("-") : format("%+.2f%%", 100.0 * (std::exp(nll - full_nll) - 1.0)))
          << " |\n";
    }
  }
  return out.str();
}

}  // namespace tidal::cli
