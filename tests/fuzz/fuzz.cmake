# tests/fuzz/fuzz.cmake: one target per tests/fuzz/fuzz_NAME.c. In every
# build, replay_NAME runs the target's seeds (corpus/NAME) and every input
# that ever crashed it (regressions/NAME) as the ctest fuzz_replay_NAME; with
# -DFERRY_FUZZ=ON (clang) fuzz_NAME is also built as a libFuzzer binary.
set(FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
file(GLOB fuzz_sources CONFIGURE_DEPENDS ${FUZZ_DIR}/fuzz_*.c)

add_library(ferryfuzzoracle STATIC ${FUZZ_DIR}/oracle.c ${FUZZ_DIR}/exchange.c)
target_link_libraries(ferryfuzzoracle PUBLIC ferrycore_internals)

# A target that includes an adapter's files is left out when the adapter is.
set(wanted_sources "")
foreach(src ${fuzz_sources})
  ferry_test_wanted(${src} wanted)
  if(wanted)
    list(APPEND wanted_sources ${src})
  endif()
endforeach()
set(fuzz_sources ${wanted_sources})

foreach(src ${fuzz_sources})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" t ${name})
  add_executable(replay_${t} ${FUZZ_DIR}/replay.c ${src})
  target_link_libraries(replay_${t} PRIVATE ferryfuzzoracle)
  add_test(NAME fuzz_replay_${t}
           COMMAND replay_${t} ${FUZZ_DIR}/corpus/${t} ${FUZZ_DIR}/regressions/${t}
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  # A regression may be an input that hung: it fails by timing out.
  set_tests_properties(fuzz_replay_${t} PROPERTIES TIMEOUT 120)
  if(FERRY_FUZZ)
    add_executable(fuzz_${t} ${src})
    target_link_libraries(fuzz_${t} PRIVATE ferryfuzzoracle)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
  endif()
endforeach()

# scripts/fuzz.sh builds just these (not the unit tests) in build-fuzz.
if(FERRY_FUZZ)
  set(fuzz_bins "")
  foreach(src ${fuzz_sources})
    get_filename_component(name ${src} NAME_WE)
    list(APPEND fuzz_bins ${name})
  endforeach()
  add_custom_target(fuzz_all DEPENDS ${fuzz_bins})
endif()
