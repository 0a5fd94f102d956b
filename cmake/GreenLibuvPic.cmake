# green_uv_pic: libuv compiled here as a position-independent static library with hidden
# symbols, so the shim can link it into libgreen_preload.so without exporting uv_* (Debian's
# libuv_a.a is not PIC). The sources come from GREEN_LIBUV_SOURCE_DIR (default
# third_party/libuv-src, filled by scripts/fetch-libuv.sh from Debian's libuv1 source package);
# the file list is config/libuv-linux-sources.txt (shared with meson.build). libuv's own
# CMakeLists.txt is not used: it would also build its tests and shared library.
#
# Sets GREEN_HAVE_UV_PIC (ON/OFF). When ON, target green_uv_pic (alias green::uv_pic) carries
# libuv's include/ as a PUBLIC include directory, so code compiled against it (the shim's copy
# of the runtime) sees the matching uv.h, and Threads/dl/rt as link dependencies.
#
# Hiding: uv.h marks every API function visibility("default") (UV_EXTERN) whatever
# -fvisibility says, so -fvisibility=hidden alone hides only libuv's internals. The uv_*
# functions are hidden at link time instead: green_uv_pic adds
# `-Wl,--exclude-libs,libgreen_uv_pic.a` to whatever links it, which makes every symbol taken
# from the archive local to the shared object being linked.
set(GREEN_LIBUV_SOURCE_DIR "${PROJECT_SOURCE_DIR}/third_party/libuv-src" CACHE PATH
    "libuv source tree for the PIC static libuv used by the shim (scripts/fetch-libuv.sh)")

set(GREEN_HAVE_UV_PIC OFF)
if(NOT EXISTS "${GREEN_LIBUV_SOURCE_DIR}/include/uv.h")
  message(STATUS "green_uv_pic: no libuv sources in ${GREEN_LIBUV_SOURCE_DIR} "
                 "(run scripts/fetch-libuv.sh); the shim cannot link libuv statically")
  return()
endif()

green_read_list("${PROJECT_SOURCE_DIR}/config/libuv-linux-sources.txt" _uv_lines)
set(_uv_sources "")
foreach(_line IN LISTS _uv_lines)
  if(NOT EXISTS "${GREEN_LIBUV_SOURCE_DIR}/${_line}")
    message(FATAL_ERROR "green_uv_pic: ${GREEN_LIBUV_SOURCE_DIR}/${_line} is missing: "
                        "config/libuv-linux-sources.txt does not match this libuv version")
  endif()
  list(APPEND _uv_sources "${GREEN_LIBUV_SOURCE_DIR}/${_line}")
endforeach()

add_library(green_uv_pic STATIC ${_uv_sources})
add_library(green::uv_pic ALIAS green_uv_pic)
set_target_properties(green_uv_pic PROPERTIES
  POSITION_INDEPENDENT_CODE ON
  C_VISIBILITY_PRESET hidden
  C_EXTENSIONS ON)  # gnu11: libuv is written for GNU C
target_include_directories(green_uv_pic
  PUBLIC "${GREEN_LIBUV_SOURCE_DIR}/include"
  PRIVATE "${GREEN_LIBUV_SOURCE_DIR}/src")
# The defines of libuv's own Linux build; -w: third-party code, not held to our warnings.
target_compile_definitions(green_uv_pic PRIVATE
  _GNU_SOURCE _POSIX_C_SOURCE=200112 _FILE_OFFSET_BITS=64 _LARGEFILE_SOURCE)
target_compile_options(green_uv_pic PRIVATE -w -fno-strict-aliasing)
target_link_libraries(green_uv_pic PUBLIC Threads::Threads ${CMAKE_DL_LIBS} rt)
target_link_options(green_uv_pic INTERFACE "LINKER:--exclude-libs,libgreen_uv_pic.a")

set(GREEN_HAVE_UV_PIC ON)
message(STATUS "green_uv_pic: PIC static libuv from ${GREEN_LIBUV_SOURCE_DIR}")
