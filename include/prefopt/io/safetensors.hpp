// prefopt/io/safetensors.hpp — the safetensors format: reading (one file or a sharded index) and writing.
//
// Format (https://github.com/huggingface/safetensors): 8 bytes little-endian N, N bytes of UTF-8
// JSON header, then the data buffer. The header maps each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end]} (byte offsets into the buffer, which the tensors tile exactly) and
// may hold "__metadata__", a string → string map.
//   safetensors_file    one file, memory-mapped, validated on open (safetensors_file.hpp)
//   safetensors_index   model.safetensors.index.json with shards opened lazily (safetensors_index.hpp)
//   safetensors_writer  byte-compatible with safetensors.torch.save_file, atomic (safetensors_writer.hpp)
//   dtype, tensor_info  (safetensors_dtype.hpp); F16/BF16 conversions (float16.hpp)
#pragma once

#include "prefopt/io/float16.hpp"
#include "prefopt/io/safetensors_dtype.hpp"
#include "prefopt/io/safetensors_file.hpp"
#include "prefopt/io/safetensors_index.hpp"
#include "prefopt/io/safetensors_writer.hpp"
