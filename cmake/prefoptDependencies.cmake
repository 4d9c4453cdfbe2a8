# prefoptDependencies.cmake — the C libraries of prefopt::prefopt's data path, found the same way
# when prefopt is built and when an installed prefopt is used through find_package(prefopt):
#   ZLIB::ZLIB                     zlib 1.2.11+            (Debian: zlib1g-dev)
#   PkgConfig::prefopt_oniguruma   Oniguruma 6.9+          (Debian: libonig-dev)
#   PkgConfig::prefopt_utf8proc    utf8proc 2.5+           (Debian: libutf8proc-dev)
# Oniguruma and utf8proc ship pkg-config files (no CMake package on Debian), hence pkg-config.
# A missing library stops the configuration with the package to install.
include_guard(GLOBAL)

find_package(ZLIB 1.2.11 QUIET)
if(NOT ZLIB_FOUND)
  message(FATAL_ERROR "prefopt needs zlib 1.2.11 or newer (Debian: apt-get install zlib1g-dev)")
endif()

find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "prefopt needs pkg-config to find Oniguruma and utf8proc (Debian: apt-get install pkg-config)")
endif()
if(NOT TARGET PkgConfig::prefopt_oniguruma)
  pkg_check_modules(prefopt_oniguruma QUIET IMPORTED_TARGET GLOBAL oniguruma>=6.9)
  if(NOT prefopt_oniguruma_FOUND)
    message(FATAL_ERROR "prefopt needs Oniguruma 6.9 or newer (Debian: apt-get install libonig-dev)")
  endif()
endif()
if(NOT TARGET PkgConfig::prefopt_utf8proc)
  pkg_check_modules(prefopt_utf8proc QUIET IMPORTED_TARGET GLOBAL libutf8proc>=2.5)
  if(NOT prefopt_utf8proc_FOUND)
    message(FATAL_ERROR "prefopt needs utf8proc 2.5 or newer (Debian: apt-get install libutf8proc-dev)")
  endif()
endif()
