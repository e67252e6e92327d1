# Runs one libFuzzer target for a bounded number of inputs, as a test:
#   cmake -DFUZZER=<binary> -DSEEDS=<seed dir> -DWORK=<scratch dir>
#         [-DRUNS=100000] [-DMAX_LEN=16384] [-DDICT=<libFuzzer dictionary>] -P run_fuzz.cmake
# New inputs go to a fresh WORK/corpus (never into the seed directory); a
# crashing input is saved under WORK/artifacts and the test fails.
foreach(var FUZZER SEEDS WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzz.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED RUNS)
  set(RUNS 100000)
endif()
if(NOT DEFINED MAX_LEN)
  set(MAX_LEN 16384)
endif()
get_filename_component(fuzz_build_dir ${FUZZER} DIRECTORY)
if(NOT EXISTS ${FUZZER} AND EXISTS ${fuzz_build_dir}/FUZZ_UNAVAILABLE)
  # The test's SKIP_REGULAR_EXPRESSION turns this into a skipped test.
  message("SKIPPED: the compiler has no libFuzzer runtime (install libclang-rt-14-dev)")
  return()
endif()
if(NOT EXISTS ${FUZZER})
  message(FATAL_ERROR "${FUZZER} is not built (build the tars_fuzzers target)")
endif()
if(NOT IS_DIRECTORY ${SEEDS})
  message(FATAL_ERROR "seed directory ${SEEDS} is missing (build the tars_fuzzers target)")
endif()

set(dict_arg "")
if(DEFINED DICT)
  if(NOT EXISTS ${DICT})
    message(FATAL_ERROR "dictionary ${DICT} is missing")
  endif()
  set(dict_arg -dict=${DICT})
endif()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
execute_process(
  COMMAND ${FUZZER} -runs=${RUNS} -max_len=${MAX_LEN} -timeout=10 -rss_limit_mb=2048
          -print_final_stats=1 -artifact_prefix=${WORK}/artifacts/ ${dict_arg}
          ${WORK}/corpus ${SEEDS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); the input that broke it is in ${WORK}/artifacts; "
                      "rerun it with: ${FUZZER} <that file>")
endif()
