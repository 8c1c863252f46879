# The symbolizer (debug/symbolize.h): PCs -> function (file:line) through
# libdwarf and libelf.  A static library, position independent, linked into
# the debug library and the inspector.
#
# libdwarf 20210528 (Debian 12) ships no pkg-config file: find it by hand.
# Its headers live in /usr/include/libdwarf/ and are included as
# <libdwarf/libdwarf.h>; never add that directory to the include path, as
# elfutils has another dwarf.h in /usr/include.
find_path(LIBDWARF_INCLUDE_DIR libdwarf/libdwarf.h)
find_library(LIBDWARF_LIBRARY dwarf)
find_path(LIBELF_INCLUDE_DIR gelf.h)
find_library(LIBELF_LIBRARY elf)
if(NOT LIBDWARF_INCLUDE_DIR OR NOT LIBDWARF_LIBRARY)
  message(FATAL_ERROR "libdwarf not found: apt-get install libdwarf-dev")
endif()
if(NOT LIBELF_INCLUDE_DIR OR NOT LIBELF_LIBRARY)
  message(FATAL_ERROR "libelf not found: apt-get install libelf-dev")
endif()

add_library(vmem_symbolize STATIC
  debug/symbolize.c
  debug/sym_dwarf.c
  debug/sym_elf.c
  debug/sym_self.c
  debug/sym_util.c)
set_target_properties(vmem_symbolize PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(vmem_symbolize
  PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/debug>
  PRIVATE ${LIBDWARF_INCLUDE_DIR} ${LIBELF_INCLUDE_DIR})
target_link_libraries(vmem_symbolize PUBLIC ${LIBDWARF_LIBRARY} ${LIBELF_LIBRARY} Threads::Threads
  ${CMAKE_DL_LIBS})
