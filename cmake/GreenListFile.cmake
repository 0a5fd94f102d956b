# green_read_list(FILE OUT_VAR): the entries of a list file (config/warnings.txt,
# runtime/sources.txt, shim/sources.txt, tests/tests.txt, config/libuv-linux-sources.txt):
# one entry a line, surrounding blanks stripped, empty lines and lines starting with '#'
# skipped. The file is added to CMAKE_CONFIGURE_DEPENDS of the calling directory, so editing
# it reconfigures.
# The meson build reads the same lists with the same rules in one loop of the top-level
# meson.build (green_lists), which the other meson.build files index.
function(green_read_list file out_var)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${file}")
  file(STRINGS "${file}" _lines)
  set(_entries "")
  foreach(_line IN LISTS _lines)
    string(STRIP "${_line}" _line)
    if(_line STREQUAL "" OR _line MATCHES "^#")
      continue()
    endif()
    list(APPEND _entries "${_line}")
  endforeach()
  set(${out_var} "${_entries}" PARENT_SCOPE)
endfunction()
