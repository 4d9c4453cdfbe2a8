// Fuzz target: a safetensors file, through io::safetensors_file (header validation, then every
// tensor read). Properties checked on an accepted file: the tensors tile the data buffer exactly
// (8 + header + Σ tensor bytes = file size), and each tensor's bytes() span has its byte size.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_support.hpp"
#include "prefopt/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  const auto path = fuzz::write_scratch("model.safetensors", fuzz::as_text(data, size));
  fuzz::reject_cleanly([&] {
    const io::safetensors_file f(path, size % 2 == 0 ? io::file_access::map : io::file_access::read);
    std::size_t total = 0;
    for (const auto& name : f.names()) {
      const auto& info = f.info(name);
      fuzz::check(f.bytes(name).size() == info.byte_size(), "bytes() spans the tensor's byte size");
      total += info.byte_size();
      fuzz::reject_cleanly([&] {  // non-float dtypes are a format_error by contract
        const auto values = f.read_f32(name);
        fuzz::check(values.size() == info.numel(), "read_f32 gives numel() values");
      });
    }
    fuzz::check(8 + f.header_size() + total == size, "tensors tile the data buffer exactly");
    fuzz::check(f.metadata().size() <= f.header_size(), "metadata fits in the header");
  });
  return 0;
}
