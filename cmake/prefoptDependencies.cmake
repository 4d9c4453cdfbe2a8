# prefoptDependencies.cmake — the C libraries of prefopt::prefopt's data path, found the same way
# when prefopt is built and when an installed prefopt is used through find_package(prefopt):
#   ZLIB::ZLIB                     zlib 1.2.11+            (Debian: zlib1g-dev)
#   PkgConfig::prefopt_oniguruma   Oniguruma 6.9+          (Debian: libonig-dev)
#   PkgConfig::prefopt_utf8proc    utf8proc 2.5+           (Debian: libutf8proc-dev)
# Oniguruma and utf8proc ship pkg-config files (no CMake package on Debian), hence pkg-config first.
# A missing library stops the configuration with the package to install.
include_guard(GLOBAL)

find_package(ZLIB 1.2.11 QUIET)
if(NOT ZLIB_FOUND)
  message(FATAL_ERROR "prefopt needs zlib 1.2.11 or newer (Debian: apt-get install zlib1g-dev)")
endif()

find_package(PkgConfig QUIET)
# Oniguruma and utf8proc through pkg-config where it and the library's .pc file exist; otherwise
# (a machine without pkg-config, or a prefix such as tools/device/prepare.sh's .device/ that holds
# only the header and the shared library) through find_path/find_library on CMake's search paths,
# as an imported target of the same name. The fallback cannot read a version: it takes what it finds.
function(_prefopt_c_library name pkg version header library debian)
  if(TARGET PkgConfig::${name})
    return()
  endif()
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(${name} QUIET IMPORTED_TARGET GLOBAL ${pkg}>=${version})
    if(${name}_FOUND)
      return()
    endif()
  endif()
  find_path(${name}_INCLUDE_DIR ${header})
  find_library(${name}_LIBRARY ${library})
  if(NOT ${name}_INCLUDE_DIR OR NOT ${name}_LIBRARY)
    message(FATAL_ERROR "prefopt needs ${pkg} ${version} or newer (Debian: apt-get install ${debian})")
  endif()
  add_library(PkgConfig::${name} UNKNOWN IMPORTED GLOBAL)
  set_target_properties(PkgConfig::${name} PROPERTIES IMPORTED_LOCATION "${${name}_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${${name}_INCLUDE_DIR}")
endfunction()
_prefopt_c_library(prefopt_oniguruma oniguruma 6.9 oniguruma.h onig libonig-dev)
_prefopt_c_library(prefopt_utf8proc libutf8proc 2.5 utf8proc.h utf8proc libutf8proc-dev)
