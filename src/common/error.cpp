#include "common/error.h"

namespace tars {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTooLarge: return "too_large";
    case ErrorCode::kCorruptData: return "corrupt_data";
    case ErrorCode::kIo: return "io_error";
    case ErrorCode::kConfig: return "config_error";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInternal: return "internal_error";
  }
  return "unknown";
}

void check_failed(const char* file, int line, const char* expr) {
  std::fprintf(stderr, "tars: CHECK failed at %s:%d: %s\n", file, line, expr);
  std::fflush(stderr);
  std::abort();
}

}  // namespace tars
