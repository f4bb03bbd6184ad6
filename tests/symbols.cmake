# tests/symbols.cmake: the naming rule, checked on the built objects (ctest
# "symbols"). Each global symbol an object defines (nm) must be:
#   core (src/*.c and the generated adapters_list.c):
#     ferry_NAME declared in include/ferry/*.h (the public API), or
#     ferry__NAME (the core's own, used across its files);
#   adapter NAME (objects built from adapters/NAME/):
#     NAME_* or ferry_adapter_NAME (what the core's adapter list names).
# Two adapters may then never define the same symbol, nor one the core's.
#
#   cmake -DNM=nm -DINCLUDE_DIR=include "-DOBJECTS=a.o|b.o|..." -P tests/symbols.cmake
#
# An object is an adapter's when its path has /adapters/NAME/ in it.
# Symbols starting with "__" are the toolchain's (sanitizers, coverage).
cmake_minimum_required(VERSION 3.18)
if(NOT NM OR NOT INCLUDE_DIR OR NOT OBJECTS)
  message(FATAL_ERROR "usage: cmake -DNM=nm -DINCLUDE_DIR=include -DOBJECTS='a.o|b.o' -P symbols.cmake")
endif()

file(GLOB headers ${INCLUDE_DIR}/ferry/*.h)
set(public "")
foreach(h ${headers})
  file(READ ${h} text)
  string(REGEX MATCHALL "ferry_[A-Za-z0-9_]+" names "${text}")
  list(APPEND public ${names})
endforeach()
list(REMOVE_DUPLICATES public)

string(REPLACE "|" ";" objects "${OBJECTS}")
set(bad "")
set(checked 0)
foreach(obj ${objects})
  execute_process(COMMAND ${NM} -g --defined-only ${obj}
                  OUTPUT_VARIABLE out RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} ${obj}: ${err}")
  endif()
  string(REGEX REPLACE ".*/CMakeFiles/[^/]+\\.dir/" "" name ${obj})
  set(adapter "")
  if(obj MATCHES "/adapters/([a-z0-9_]+)/")
    set(adapter ${CMAKE_MATCH_1})
  endif()
  string(REGEX MATCHALL "[^\n]+" lines "${out}")
  foreach(line ${lines})
    if(NOT line MATCHES "^[0-9a-fA-F]* *[A-Za-z] ([^ ]+)$")
      continue()
    endif()
    set(sym ${CMAKE_MATCH_1})
    if(sym MATCHES "^__")
      continue()
    endif()
    math(EXPR checked "${checked} + 1")
    if(adapter)
      if(NOT sym MATCHES "^${adapter}_" AND NOT sym STREQUAL "ferry_adapter_${adapter}")
        list(APPEND bad "${name}: ${sym} (adapter ${adapter}: ${adapter}_* only)")
      endif()
    elseif(sym MATCHES "^ferry__[a-z0-9]")
      # the core's own
    elseif(sym MATCHES "^ferry_[a-z0-9]" AND sym IN_LIST public)
      # the public API
    elseif(sym MATCHES "^ferry_[a-z0-9]")
      list(APPEND bad "${name}: ${sym} (ferry_* but not declared in include/ferry: ferry__*?)")
    else()
      list(APPEND bad "${name}: ${sym} (core: ferry_* public, ferry__* inside)")
    endif()
  endforeach()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "no global symbols found: wrong object list?")
endif()
list(LENGTH bad n)
if(n GREATER 0)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "${n} global symbol(s) outside the naming rule:\n  ${text}")
endif()
message(STATUS "${checked} global symbols, all within the naming rule")
