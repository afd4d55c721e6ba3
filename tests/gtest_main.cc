// main() of every GoogleTest suite: GoogleTest's own, except for two outcomes GoogleTest counts
// as a pass. A run in which a test was skipped (GTEST_SKIP) exits 77, which ctest reports as a
// skip (SKIP_RETURN_CODE, set by cmake/PhotonTest.cmake) and scripts/test.sh fails on; a run in
// which no test ran (a --gtest_filter matching nothing) is a broken registration and fails.
#include <gtest/gtest.h>

#include <cstdio>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  if (rc != 0 || GTEST_FLAG_GET(list_tests)) return rc;
  const testing::UnitTest& unit = *testing::UnitTest::GetInstance();
  if (unit.test_to_run_count() == 0) {
    std::fprintf(stderr, "FAILED: no test ran (--gtest_filter=%s matched none)\n",
                 GTEST_FLAG_GET(filter).c_str());
    return 1;
  }
  if (unit.skipped_test_count() > 0) {
    std::fprintf(stderr, "SKIPPED: %d of %d tests did not run (see [  SKIPPED ] above); exit %d\n",
                 unit.skipped_test_count(), unit.test_to_run_count(), PHOTON_SKIP_RETURN_CODE);
    return PHOTON_SKIP_RETURN_CODE;
  }
  return 0;
}
