// Where the source tree and its golden data are (the one place the build passes them in).
#include "support/data.hpp"

namespace prefopt::test {
std::filesystem::path data_dir() { return PREFOPT_TEST_DATA_DIR; }
std::filesystem::path source_dir() { return PREFOPT_SOURCE_DIR; }
} // namespace prefopt::test
