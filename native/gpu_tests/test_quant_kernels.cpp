// GPU tests of the block-quantised weight kernels (kernels/gemv_quant.cu, kernels/dequantize.cu,
// the quantised gather of kernels/embedding.cu) against the engine's CPU dequantiser
// (model/quant.h) on random blocks: random bytes for the quants and packed scales, the f16
// scales set to finite values of a weight's magnitude.
//   gemv_quant: y against a float64 sum over the CPU's dequantised rows, beta 0 and 1, every
//     compiled configuration of the format (Q4_K's tensor-core ones included); every row within
//     1e-4 of sum |W x| of its reference, relative L2 error below 1e-3, and the NaN poison past
//     the last row untouched. The default configurations also launched early (kernels/common.cuh)
//     behind a kernel that writes x and y only after a delay.
//   dequantize_bf16: a whole matrix and a range of rows, every value the CPU's float32 rounded
//     to bf16, or one bf16 step from it, and the poison past the range untouched.
//   embedding_quant: the rows of random token ids (the first and last row among them, the last
//     twice) into a NaN-poisoned output, every value the CPU's float32 bit for bit, and the
//     poison past the last token untouched; also at Llama-3.1-8B's 128256 x 4096.
// Shapes: cols 256 to 14336, including block counts that leave Q6_K rows off 16-byte
// boundaries (and Q8_0 rows of 37 blocks), rows 1, 7, 33 and 4097 (Q4_K also 8999 and 16389).
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/dequantize.h"
#include "kernels/embedding.h"
#include "kernels/gemv_quant.h"
#include "kernels/swiglu.h"
#include "late_writer.h"
#include "model/half.h"
#include "model/quant.h"
#include "test_support.h"

namespace tidal::gpu_test {

namespace {

using cuda::QuantFormat;

const char* format_name(QuantFormat format) {
  switch (format) {
    case QuantFormat::Q8_0:
      return "Q8_0";
    case QuantFormat::Q4_K:
      return "Q4_K";
    default:
      return "Q6_K";
  }
}

void put_f16(uint8_t* at, float value) {
  const uint16_t bits = f32_to_f16(value);
  at[0] = uint8_t(bits & 0xFF);
  at[1] = uint8_t(bits >> 8);
}

// A random scale of a weight's magnitude: |d| in [1e-3, 2e-2), either sign.
float random_scale(Rng& rng) {
  const double magnitude = rng.uniform(1e-3, 2e-2);
  return float(rng.next() & 1 ? magnitude : -magnitude);
}

// rows x cols of `format`: random bytes, then the f16 fields of every block set.
std::vector<uint8_t> random_matrix(Rng& rng, QuantFormat format, int64_t rows, int cols) {
  const int64_t bytes = rows * cuda::quant_row_bytes(format, cols);
  std::vector<uint8_t> data(static_cast<size_t>(bytes));
  for (size_t i = 0; i < data.size(); i += 8) {
    const uint64_t word = rng.next();
    for (size_t j = 0; j < 8 && i + j < data.size(); ++j) data[i + j] = uint8_t(word >> (8 * j));
  }
  const int block_bytes = cuda::quant_block_bytes(format);
  for (int64_t at = 0; at < bytes; at += block_bytes) {
    uint8_t* block = data.data() + at;
    switch (format) {
      case QuantFormat::Q8_0:
        put_f16(block, random_scale(rng));
        break;
      case QuantFormat::Q4_K:
        put_f16(block, random_scale(rng));      // d
        put_f16(block + 2, random_scale(rng));  // dmin
        break;
      case QuantFormat::Q6_K:
        put_f16(block + 208, random_scale(rng));
        break;
    }
  }
  return data;
}

// Row r of the matrix as the CPU dequantiser's float32.
std::vector<float> host_row(QuantFormat format, const std::vector<uint8_t>& matrix, int64_t r, int cols) {
  std::vector<float> row(static_cast<size_t>(cols));
  const int64_t row_bytes = cuda::quant_row_bytes(format, cols);
  dequantize_to_f32(static_cast<GgmlType>(uint32_t(format)), matrix.data() + r * row_bytes, size_t(cols), row.data());
  return row;
}

struct Shape {
  int64_t rows;
  int cols;
};

std::string config_name(const cuda::GemvQuantConfig& config) {
  return std::to_string(config.warps) + "w" + std::to_string(config.rows_per_warp) + "r" +
         std::to_string(config.stages) + "s" + (config.mma ? " mma" : "") +
         (config.k_splits ? " k" + std::to_string(config.k_splits) : std::string()) +
         (config.min_blocks ? " b" + std::to_string(config.min_blocks) : std::string());
}

void check_gemv(Report& report, Rng& rng, QuantFormat format, const Shape& shape, const std::vector<uint8_t>& matrix) {
  const int64_t rows = shape.rows;
  const int cols = shape.cols;
  std::vector<uint16_t> x(static_cast<size_t>(cols));
  for (uint16_t& v : x) v = random_bf16(rng);
  std::vector<double> dot(static_cast<size_t>(rows)), magnitude(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> row = host_row(format, matrix, r, cols);
    double sum = 0, absolute = 0;
    for (int c = 0; c < cols; ++c) {
      const double term = double(row[size_t(c)]) * double(from_bf16(x[size_t(c)]));
      sum += term;
      absolute += std::fabs(term);
    }
    dot[size_t(r)] = sum;
    magnitude[size_t(r)] = absolute;
  }
  DeviceArray<uint8_t> device_matrix(matrix);
  DeviceArray<uint16_t> device_x(x);
  constexpr int64_t kTail = 4;  // entries past the last row that must keep the poison
  for (const cuda::GemvQuantConfig& config : cuda::kGemvQuantConfigs) {
    if (!cuda::gemv_quant_config_supported(config, format)) continue;
    for (const float beta : {0.0f, 1.0f}) {
      // Every configuration of the format at every shape with beta 0; beta 1 with the format's
      // default one, and with the others at the larger shapes.
      if (!(config == cuda::default_gemv_quant_config(format)) && beta != 0.0f && rows * cols < 1'000'000) continue;
      DeviceArray<float> y(size_t(rows + kTail));
      y.poison();
      std::vector<float> initial(size_t(rows + kTail), NAN);
      if (beta != 0.0f) {
        initial = y.download();
        for (int64_t r = 0; r < rows; ++r) initial[size_t(r)] = float(rng.uniform(-2.0, 2.0));
        y.upload(initial);
      }
      // The default configuration also launched early (kernels/common.cuh) behind a kernel that
      // writes x and y only after a delay, over a poisoned x and y: the product must read them
      // after that kernel ends.
      const bool early = config == cuda::default_gemv_quant_config(format);
      DeviceArray<uint16_t> late_x{size_t(cols)};
      DeviceArray<float> late_y{size_t(rows + kTail)};
      if (early) {
        late_x.poison();
        check_cuda(cudaMemcpy(late_y.data(), y.data(), size_t(rows + kTail) * 4, cudaMemcpyDeviceToDevice), "copy y");
        y.poison();
      }
      check_cuda(early ? cudaSuccess
                       : cuda::launch_gemv_quant_with(config, format, device_matrix.data(), rows, cols, device_x.data(),
                                                      y.data(), beta, nullptr),
                 "launch_gemv_quant");
      if (early) {
        const void* from[2] = {device_x.data(), late_y.data()};
        void* to[2] = {late_x.data(), y.data()};
        const size_t bytes[2] = {size_t(cols) * 2, beta != 0.0f ? size_t(rows) * 4 : 0};
        behind_late_copy(from, to, bytes, [&](cudaStream_t stream) {
          return cuda::launch_gemv_quant_with(config, format, device_matrix.data(), rows, cols, late_x.data(), y.data(),
                                              beta, stream, true);
        });
      }
      check_cuda(cudaDeviceSynchronize(), "gemv_quant");
      const std::vector<float> got = y.download();
      std::vector<double> ref(static_cast<size_t>(rows)), out(static_cast<size_t>(rows));
      double worst = 0;  // max over rows of |error| / sum |W x|
      for (int64_t r = 0; r < rows; ++r) {
        ref[size_t(r)] = dot[size_t(r)] + (beta != 0.0f ? double(initial[size_t(r)]) : 0.0);
        out[size_t(r)] = got[size_t(r)];
        const double error = std::fabs(out[size_t(r)] - ref[size_t(r)]) / std::max(magnitude[size_t(r)], 1e-30);
        worst = std::isfinite(out[size_t(r)]) ? std::max(worst, error) : INFINITY;
      }
      bool tail_ok = true;
      for (int64_t i = rows; i < rows + kTail; ++i) {
        uint32_t bits;
        std::memcpy(&bits, &got[size_t(i)], 4);
        tail_ok = tail_ok && bits == 0xFFFFFFFFu;
      }
      const double relative = relative_l2(ref, out);
      report.check(worst < 1e-4 && relative < 1e-3 && tail_ok,
                   std::string("gemv_quant ") + format_name(format) + " " + config_name(config) +
                       (early ? " early" : "") + " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
                       " beta=" + (beta != 0.0f ? "1" : "0"),
                   "max |err|/sum|wx| " + gpu_test::format("%.2e", worst) + ", rel L2 " +
                       gpu_test::format("%.2e", relative) + (tail_ok ? "" : ", wrote past the last row"));
    }
  }
}

// Rows [first, first + count) through launch_dequantize_bf16 against the CPU's values in bf16.
void check_dequantize(Report& report, QuantFormat format, const Shape& shape, const std::vector<uint8_t>& matrix,
                      const DeviceArray<uint8_t>& device_matrix, int64_t first, int64_t count) {
  const int cols = shape.cols;
  constexpr int64_t kTail = 8;
  DeviceArray<uint16_t> out(size_t(count * cols + kTail));
  out.poison();
  check_cuda(cuda::launch_dequantize_bf16(format, device_matrix.data(), first, count, cols, out.data(), nullptr),
             "launch_dequantize_bf16");
  check_cuda(cudaDeviceSynchronize(), "dequantize_bf16");
  const std::vector<uint16_t> got = out.download();
  int64_t inexact = 0, wrong = 0;
  for (int64_t r = 0; r < count; ++r) {
    const std::vector<float> row = host_row(format, matrix, first + r, cols);
    for (int c = 0; c < cols; ++c) {
      const uint16_t expected = f32_to_bf16(row[size_t(c)]);
      const uint16_t value = got[size_t(r * cols + c)];
      if (value == expected) continue;
      ++inexact;
      // One step: same sign, magnitudes one apart (bf16 bits are sign-magnitude).
      const bool same_sign = (value & 0x8000u) == (expected & 0x8000u);
      const int step = std::abs(int(value & 0x7FFFu) - int(expected & 0x7FFFu));
      if (!same_sign || step > 1) ++wrong;
    }
  }
  bool tail_ok = true;
  for (int64_t i = count * cols; i < count * cols + kTail; ++i) tail_ok = tail_ok && got[size_t(i)] == 0xFFFFu;
  report.check(wrong == 0 && tail_ok,
               std::string("dequantize_bf16 ") + format_name(format) + " rows " + std::to_string(first) + "+" +
                   std::to_string(count) + " of " + std::to_string(shape.rows) + " cols=" + std::to_string(cols),
               std::to_string(inexact) + " values one bf16 step off, " + std::to_string(wrong) + " further" +
                   (tail_ok ? "" : ", wrote past the range"));
}

// The matrix as an embedding table [rows][cols]: the rows of `count` token ids gathered by
// launch_embedding_quant against the CPU dequantiser's float32 rows, bit for bit (every value
// is exact before its last operation, so a fused multiply-add on either side rounds the same:
// cpu/block_dot.h).
void check_embedding(Report& report, Rng& rng, QuantFormat format, const Shape& shape,
                     const std::vector<uint8_t>& matrix, const DeviceArray<uint8_t>& device_matrix, int count) {
  const int cols = shape.cols;
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  for (int32_t& t : tokens) t = int32_t(rng.below(shape.rows));
  tokens[0] = int32_t(shape.rows - 1);
  if (count > 2) {
    tokens[1] = 0;
    tokens[size_t(count) - 1] = int32_t(shape.rows - 1);
  }
  constexpr int64_t kTail = 8;
  DeviceArray<int32_t> device_tokens(tokens);
  DeviceArray<float> out(size_t(int64_t(count) * cols + kTail));
  out.poison();
  check_cuda(cuda::launch_embedding_quant(format, device_matrix.data(), device_tokens.data(), count, cols, out.data(),
                                          nullptr),
             "launch_embedding_quant");
  check_cuda(cudaDeviceSynchronize(), "embedding_quant");
  const std::vector<float> got = out.download();
  int64_t wrong = 0;
  double worst = 0;  // largest |error| relative to the row's largest magnitude
  for (int t = 0; t < count; ++t) {
    const std::vector<float> row = host_row(format, matrix, tokens[size_t(t)], cols);
    double largest = 1e-30;
    for (float v : row) largest = std::max(largest, double(std::fabs(v)));
    for (int c = 0; c < cols; ++c) {
      const float expected = row[size_t(c)], value = got[size_t(int64_t(t) * cols + c)];
      if (std::memcmp(&expected, &value, 4) == 0) continue;
      ++wrong;
      const double error = std::fabs(double(value) - double(expected)) / largest;
      worst = std::isfinite(error) ? std::max(worst, error) : INFINITY;
    }
  }
  bool tail_ok = true;
  for (int64_t i = int64_t(count) * cols; i < int64_t(count) * cols + kTail; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &got[size_t(i)], 4);
    tail_ok = tail_ok && bits == 0xFFFFFFFFu;
  }
  report.check(wrong == 0 && tail_ok,
               std::string("embedding_quant ") + format_name(format) + " tokens=" + std::to_string(count) +
                   " of rows=" + std::to_string(shape.rows) + " hidden=" + std::to_string(cols),
               std::to_string(wrong) + " values not the CPU's float32" +
                   (wrong ? ", worst off by " + gpu_test::format("%.2e", worst) + " of the row's largest" : "") +
                   (tail_ok ? "" : ", wrote past the last token"));
}

// Arguments the launchers must refuse without launching.
void check_refusals(Report& report, QuantFormat format) {
  DeviceArray<uint8_t> matrix(size_t(4 * cuda::quant_row_bytes(format, 512) + 16));
  DeviceArray<uint16_t> x(512 + 8), out(4 * 512 + 8);
  DeviceArray<float> y(4);
  DeviceArray<int32_t> tokens(std::vector<int32_t>{0, 3});
  const int odd_cols = cuda::quant_block_elements(format) + 16;
  const bool ok =
      cuda::launch_gemv_quant(format, matrix.data(), 4, odd_cols, x.data(), y.data(), 0.0f, nullptr) ==
          cudaErrorInvalidValue &&
      cuda::launch_gemv_quant(format, matrix.data() + 2, 4, 512, x.data(), y.data(), 0.0f, nullptr) ==
          cudaErrorMisalignedAddress &&
      cuda::launch_gemv_quant(format, matrix.data(), 4, 512, x.data() + 1, y.data(), 0.0f, nullptr) ==
          cudaErrorMisalignedAddress &&
      cuda::launch_dequantize_bf16(format, matrix.data(), 0, 4, odd_cols, out.data(), nullptr) ==
          cudaErrorInvalidValue &&
      cuda::launch_dequantize_bf16(format, matrix.data(), 0, 4, 512, out.data() + 1, nullptr) ==
          cudaErrorMisalignedAddress &&
      cuda::launch_embedding_quant(format, matrix.data(), tokens.data(), 2, odd_cols, y.data(), nullptr) ==
          cudaErrorInvalidValue &&
      cuda::launch_embedding_quant(format, matrix.data() + 2, tokens.data(), 2, 512, y.data(), nullptr) ==
          cudaErrorMisalignedAddress &&
      cuda::launch_embedding_quant(format, matrix.data(), tokens.data(), 2, 512, y.data() + 1, nullptr) ==
          cudaErrorMisalignedAddress &&
      cuda::launch_embedding_quant(QuantFormat(2), matrix.data(), tokens.data(), 2, 512, y.data(), nullptr) ==
          cudaErrorInvalidValue &&
      cuda::launch_embedding_quant(format, matrix.data(), tokens.data(), 0, 512, y.data(), nullptr) == cudaSuccess &&
      cuda::launch_gemv_quant(QuantFormat(2), matrix.data(), 4, 512, x.data(), y.data(), 0.0f, nullptr) ==
          cudaErrorInvalidValue &&
      cuda::launch_gemv_quant(format, matrix.data(), 0, 512, x.data(), y.data(), 0.0f, nullptr) == cudaSuccess &&
      !cuda::gemv_quant_config_supported({4, 3, 3}) &&
      cuda::gemv_quant_config_supported(cuda::kDefaultGemvQ4kConfig, QuantFormat::Q4_K) &&
      (format == QuantFormat::Q4_K ||
       cuda::launch_gemv_quant_with(cuda::kDefaultGemvQ4kConfig, format, matrix.data(), 4, 512, x.data(), y.data(),
                                    0.0f, nullptr) == cudaErrorInvalidValue) &&
      cuda::launch_gemv_quant_with({4, 3, 3}, format, matrix.data(), 4, 512, x.data(), y.data(), 0.0f, nullptr) ==
          cudaErrorInvalidValue;
  check_cuda(cudaDeviceSynchronize(), "refusals");
  report.check(ok, std::string("quant launchers refuse bad arguments ") + format_name(format));
}

}  // namespace

std::string hex_word(uint32_t word) {
  char text[16];
  std::snprintf(text, sizeof text, "%08x", word);
  return text;
}

// Whether a kernel launched early does start before the kernel ahead of it ends on this device
// (otherwise the early-launch checks above could not fail): the probe reads the poisoned word
// before its wait and the written one after it. Both kernels run once first: the first launch of
// a kernel loads its module (lazy loading), which lets nothing overlap. The first H100 run,
// without that, saw the written word on both sides of the wait.
void check_early_launch_overlaps(Report& report) {
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "creating a stream");
  const std::vector<uint32_t> value = {0x12345678u};
  DeviceArray<uint32_t> source(value), target(1), seen(2);
  const void* from[2] = {source.data(), nullptr};
  void* to[2] = {target.data(), nullptr};
  const size_t bytes[2] = {4, 0};
  check_cuda(launch_late_copy(from, to, bytes, 0, stream), "late copy, first launch");
  check_cuda(launch_early_probe(target.data(), seen.data(), stream), "early probe, first launch");
  check_cuda(cudaStreamSynchronize(stream), "first launches");
  std::vector<uint32_t> got;
  // A busy GPU (another process) may delay the probe past the writer; three tries.
  for (int attempt = 0; attempt < 3; ++attempt) {
    target.poison();
    seen.poison(0);
    check_cuda(cudaDeviceSynchronize(), "poison");
    check_cuda(launch_late_copy(from, to, bytes, 200'000, stream), "late copy");
    check_cuda(launch_early_probe(target.data(), seen.data(), stream), "early probe");
    check_cuda(cudaStreamSynchronize(stream), "early probe");
    got = seen.download();
    if (got[0] == 0xFFFFFFFFu && got[1] == 0x12345678u) break;
  }
  cudaStreamDestroy(stream);
  report.check(got[0] == 0xFFFFFFFFu && got[1] == 0x12345678u,
               "a kernel launched early starts before the one ahead ends, and its wait sees that one's writes",
               "before the wait " + hex_word(got[0]) + ", after " + hex_word(got[1]));
}

// The gate|up product ending in SwiGLU (launch_gemv_quant_swiglu_with) against the plain
// product into fp32 followed by launch_swiglu, bit for bit, for every configuration of the
// format that pairs rows; `inner` outputs over a [2 * inner][cols] matrix, with poisoned
// outputs past them. A configuration of one row a warp is refused.
void check_gemv_swiglu(Report& report, Rng& rng, QuantFormat format, int64_t inner, int cols) {
  const std::vector<uint8_t> matrix = random_matrix(rng, format, 2 * inner, cols);
  std::vector<uint16_t> x(static_cast<size_t>(cols));
  for (uint16_t& v : x) v = random_bf16(rng);
  const DeviceArray<uint8_t> device_matrix(matrix);
  const DeviceArray<uint16_t> device_x(x);
  constexpr int64_t kTail = 8;
  for (const cuda::GemvQuantConfig& config : cuda::kGemvQuantConfigs) {
    if (!cuda::gemv_quant_config_supported(config, format)) continue;
    DeviceArray<float> sums(size_t(2 * inner));
    DeviceArray<uint16_t> composed(size_t(inner + kTail)), fused(size_t(inner + kTail));
    sums.poison();
    composed.poison();
    fused.poison();
    check_cuda(cuda::launch_gemv_quant_with(config, format, device_matrix.data(), 2 * inner, cols, device_x.data(),
                                            sums.data(), 0.0f, nullptr),
               "gemv_quant");
    check_cuda(cuda::launch_swiglu(sums.data(), 1, static_cast<int>(inner), composed.data(), nullptr), "swiglu");
    const cudaError_t launched = cuda::launch_gemv_quant_swiglu_with(config, format, device_matrix.data(), inner, cols,
                                                                     device_x.data(), fused.data(), nullptr);
    check_cuda(cudaDeviceSynchronize(), "gemv_quant with SwiGLU");
    const std::string name = std::string("gemv_quant ") + format_name(format) + " " + config_name(config) +
                             " ending in SwiGLU, inner " + std::to_string(inner) + " cols " + std::to_string(cols);
    if (config.rows_per_warp % 2 != 0) {
      (void)cudaGetLastError();
      report.check(launched == cudaErrorInvalidValue, name + ": refused (one row a warp)");
      continue;
    }
    const std::vector<uint16_t> want = composed.download(), got = fused.download();
    size_t differing = 0;
    for (int64_t i = 0; i < inner; ++i) differing += want[size_t(i)] != got[size_t(i)];
    bool tail = true;
    for (int64_t i = inner; i < inner + kTail; ++i) tail = tail && got[size_t(i)] == 0xFFFFu;
    report.check(launched == cudaSuccess && differing == 0 && tail,
                 name + ": equals the product then SwiGLU, bit for bit",
                 std::to_string(differing) + " of " + std::to_string(inner) + " differ" +
                     (tail ? "" : ", wrote past the outputs"));
  }
}

void test_quant_kernels(Report& report) {
  Rng rng(19001);
  check_early_launch_overlaps(report);
  for (const QuantFormat format : {QuantFormat::Q8_0, QuantFormat::Q4_K, QuantFormat::Q6_K}) {
    // 768 and 1280 are 3 and 5 K-blocks: Q6_K rows of 630 and 1050 bytes start off 16 bytes.
    std::vector<Shape> shapes = {{1, 256}, {7, 768}, {33, 1280}, {5, 3072}, {4097, 4096}, {67, 14336}, {512, 14336}};
    if (format == QuantFormat::Q4_K) {
      // Many row groups of 16 (more than an H100 or H200 runs at once), one with 3 rows; and a
      // single K-block, so that three of the tensor-core kernel's four warps have none.
      shapes.push_back({16389, 256});
      shapes.push_back({8999, 2048});
    }
    if (format == QuantFormat::Q8_0) {
      shapes.push_back({5, 96});    // 3 blocks, one partial chunk
      shapes.push_back({9, 1184});  // 37 blocks: 1258-byte rows
    }
    for (const Shape& shape : shapes) {
      if (quick_mode() && shape.rows * shape.cols > 2'000'000) continue;
      const std::vector<uint8_t> matrix = random_matrix(rng, format, shape.rows, shape.cols);
      check_gemv(report, rng, format, shape, matrix);
      const DeviceArray<uint8_t> device_matrix(matrix);
      check_dequantize(report, format, shape, matrix, device_matrix, 0, shape.rows);
      const int64_t first = shape.rows / 2;
      check_dequantize(report, format, shape, matrix, device_matrix, first,
                       std::max<int64_t>(1, shape.rows - first - 1));
      check_embedding(report, rng, format, shape, matrix, device_matrix, 37);
    }
    if (!quick_mode()) {  // An embedding of Llama-3.1-8B's shape.
      const Shape vocabulary = {128256, 4096};
      const std::vector<uint8_t> table = random_matrix(rng, format, vocabulary.rows, vocabulary.cols);
      const DeviceArray<uint8_t> device_table(table);
      check_embedding(report, rng, format, vocabulary, table, device_table, 300);
    }
    check_refusals(report, format);
    // Odd output counts: a partial row group of the tensor-core kernel (8 outputs a block) and
    // of every SIMT configuration; and a Llama-3.1-8B gate|up.
    const int block_cols = format == QuantFormat::Q8_0 ? 96 : 768;
    check_gemv_swiglu(report, rng, format, 13, block_cols);
    check_gemv_swiglu(report, rng, format, 1, 256);
    if (!quick_mode()) check_gemv_swiglu(report, rng, format, 14336, 4096);
  }
}

}  // namespace tidal::gpu_test
