// The copy bandwidth of the GPU, measured: the memory-bound floor benchmarks compare with.
#pragma once

namespace tidal::bench {

// Device-to-device copy of 2 GiB on device 0, bytes read + written per second (median of 9
// after 3 warm-up copies). Throws Error when there is no CUDA backend in this build or no GPU.
double measure_copy_bandwidth();

}  // namespace tidal::bench
