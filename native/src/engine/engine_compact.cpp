// Engine::compact_sequence: the ranges' checks and the sequence's bookkeeping around the
// backend's K/V move (Backend::compact).
#include <string>

#include "engine/engine_impl.h"
#include "tidal/error.h"

namespace tidal {

namespace {

std::string describe(size_t index, const std::pair<int64_t, int64_t>& range) {
  return "compaction range " + std::to_string(index) + " (start " + std::to_string(range.first) + ", count " +
         std::to_string(range.second) + ")";
}

void validate_ranges(const KvRanges& ranges, int64_t processed, SequenceId id) {
  int64_t previous_end = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const auto [start, count] = ranges[i];
    if (count < 1) throw RequestError(describe(i, ranges[i]) + " is empty: every count must be at least 1");
    if (start < 0 || start >= processed || count > processed - start)
      throw RequestError(describe(i, ranges[i]) + " is outside the " + std::to_string(processed) +
                         " processed positions of sequence " + std::to_string(id) + " [0, " +
                         std::to_string(processed) + ")");
    if (i > 0 && start < previous_end)
      throw RequestError(describe(i, ranges[i]) + " starts before the end of the range before it (" +
                         std::to_string(previous_end) + "): ranges must be ascending and must not overlap");
    previous_end = start + count;
  }
}

}  // namespace

void Engine::compact_sequence(SequenceId id, const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  Impl& engine = *impl_;
  Sequence& sequence = engine.find(id);
  const int64_t processed = sequence.cache->length();
  validate_ranges(ranges, processed, id);

  std::vector<int32_t> kept;
  int64_t first_sparse = Sequence::kNoSparsePosition;
  for (const auto& [start, count] : ranges) {
    const int64_t at = static_cast<int64_t>(kept.size());
    // Entries written under sparse attention keep being tracked at their new positions.
    if (first_sparse == Sequence::kNoSparsePosition && sequence.first_sparse_position < start + count)
      first_sparse = at + std::max<int64_t>(0, sequence.first_sparse_position - start);
    kept.insert(kept.end(), sequence.tokens.begin() + start, sequence.tokens.begin() + start + count);
  }

  try {
    engine.backend->compact(*sequence.cache, ranges);
  } catch (const OutOfMemoryError&) {
    throw;  // nothing was changed
  } catch (const RequestError&) {
    throw;
  } catch (const std::exception& error) {
    engine.sequences.erase(id);
    engine.sequence_count.store(static_cast<int64_t>(engine.sequences.size()));
    throw Error("compacting sequence " + std::to_string(id) + " failed part-way (" + error.what() +
                "); the sequence was released: create it again and prefill its tokens");
  }
  // The logits stay valid only when every processed position was kept in place.
  if (sequence.cache->length() != processed) sequence.logits_valid = false;
  sequence.tokens = std::move(kept);
  sequence.first_sparse_position = first_sparse;
}

}  // namespace tidal
