# Sanitizer and fuzzing builds of prefopt's own executables (never pushed onto users of the library).
#
#   PREFOPT_SANITIZE=ON  the unit tests, examples and the program built with AddressSanitizer and
#                        UndefinedBehaviorSanitizer: -fsanitize=address,undefined
#                        -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g1. Any report
#                        fails the test. GCC or Clang. Nothing is suppressed: no suppression file,
#                        no -fno-sanitize=... for any header, ours or a dependency's.
#   PREFOPT_FUZZ=ON      builds only the libFuzzer targets of tests/fuzz (Clang only; the runtime is
#                        Debian's libclang-rt-14-dev): -fsanitize=fuzzer,address,undefined with the
#                        same recover rule. Tests, examples, benchmarks and the program are not built.
option(PREFOPT_SANITIZE "Build tests, examples and tools with ASan + UBSan (-O1 -g1)" OFF)
option(PREFOPT_FUZZ "Build only the libFuzzer targets in tests/fuzz (needs Clang)" OFF)

set(prefopt_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)

if(PREFOPT_SANITIZE OR PREFOPT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "PREFOPT_SANITIZE/PREFOPT_FUZZ need GCC or Clang (found ${CMAKE_CXX_COMPILER_ID})")
  endif()
  # -O1 -g1 whatever the build type: the run stays fast enough, and line tables (-g1: functions,
  # files and lines, no variable info) keep every stack trace readable; full -g made the
  # template-heavy tests compile 1.5x slower (80 s against 54 s of CPU for train/reference_test).
  foreach(config "" _RELEASE _RELWITHDEBINFO _DEBUG _MINSIZEREL)
    set(CMAKE_CXX_FLAGS${config} "-O1 -g1")
  endforeach()
  add_compile_options(${prefopt_sanitize_flags})
  add_link_options(${prefopt_sanitize_flags})
endif()

if(PREFOPT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PREFOPT_FUZZ needs Clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Instrumentation for coverage everywhere; the fuzzer's main() only in the fuzz targets.
  add_compile_options(-fsanitize=fuzzer-no-link)
  foreach(other TESTS EXAMPLES BENCHMARKS TOOLS)
    set(PREFOPT_BUILD_${other} OFF)
  endforeach()
endif()
