// prefopt/core/config.hpp — portability macros shared by host and device code.
#pragma once

// PREFOPT_HD marks scalar math that every backend may call: plain inline code on the host,
// __host__ __device__ when compiled by nvcc, so the CUDA backend maps the same functions the CPU
// tests check.
#if defined(__CUDACC__)
#define PREFOPT_HD __host__ __device__
#else
#define PREFOPT_HD
#endif

#define PREFOPT_VERSION_MAJOR 0
#define PREFOPT_VERSION_MINOR 1
#define PREFOPT_VERSION_PATCH 0
