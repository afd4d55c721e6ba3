# Test registration shared by every tests/*/CMakeLists.txt; each includes this file first.
# A test that did not run must reach ctest as a skip, never as a pass, and a missing tool must
# not make a suite vanish:
# - GoogleTest executables link photon_gtest_main (tests/gtest_main.cc), which exits 77 when a
#   test was skipped; the Python suites exit 77 themselves when they cannot run.
# - At the end of the including directory every test gets SKIP_RETURN_CODE 77 (and unittest's
#   "OK (skipped=N)" counts as a skip too), so suites added later are covered without a step.
# - Suites that need a tool found at configure time are registered even when it is missing
#   (photon_missing_tool_test), as a test that reports a skip naming the tool.
# scripts/test.sh fails on any skip and on a suite missing from tests/suites.txt.
set(PHOTON_SKIP_RETURN_CODE 77)

if(NOT TARGET photon_gtest_main)
  add_library(photon_gtest_main STATIC ${CMAKE_SOURCE_DIR}/tests/gtest_main.cc)
  target_compile_options(photon_gtest_main PRIVATE ${PHOTON_WARNINGS})
  target_compile_definitions(photon_gtest_main
    PRIVATE PHOTON_SKIP_RETURN_CODE=${PHOTON_SKIP_RETURN_CODE})
  target_link_libraries(photon_gtest_main PUBLIC GTest::gtest)
endif()

# photon_missing_tool_test(NAME TOOL HINT): NAME reports a skip saying TOOL is missing and how
# to install it (HINT).
function(photon_missing_tool_test name tool hint)
  add_test(NAME ${name} COMMAND /bin/sh -c "echo \"SKIPPED: ${tool} is not installed (${hint})\"; \
exit ${PHOTON_SKIP_RETURN_CODE}")
endfunction()

function(photon_finish_test_directory)
  get_directory_property(tests TESTS)
  if(tests)
    set_tests_properties(${tests} PROPERTIES SKIP_RETURN_CODE ${PHOTON_SKIP_RETURN_CODE}
      SKIP_REGULAR_EXPRESSION "OK \\(skipped=[0-9]+\\)")
  endif()
  # GoogleTest's own main reports a skipped test as a pass: swap it for ours, so a test
  # executable added without knowing this still reports its skips.
  get_directory_property(targets BUILDSYSTEM_TARGETS)
  foreach(target ${targets})
    get_target_property(libs ${target} LINK_LIBRARIES)
    if(libs AND "GTest::gtest_main" IN_LIST libs)
      list(TRANSFORM libs REPLACE "^GTest::gtest_main$" photon_gtest_main)
      set_property(TARGET ${target} PROPERTY LINK_LIBRARIES ${libs})
    endif()
  endforeach()
endfunction()
cmake_language(DEFER CALL photon_finish_test_directory)
