#pragma once
// Errors shared by every layer.
//
// Inside a module, code throws tars::Error (or returns a status); at a module
// boundary the code says what kind of failure it was, so the HTTP and JSON-RPC
// layers can map it to a status in one place without parsing messages.
// Invariants that only a bug can break use TARS_CHECK, which aborts with the
// file and line.

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace tars {

enum class ErrorCode {
  kInvalidArgument,   // the caller sent something wrong (HTTP 400)
  kNotFound,          // unknown model, file, route (HTTP 404)
  kUnavailable,       // no model loaded, overloaded, shutting down (HTTP 503)
  kTooLarge,          // body or input over a limit (HTTP 413)
  kCorruptData,       // a file that fails validation (GGUF, inventory)
  kIo,                // the operating system refused (open, read, bind)
  kConfig,            // configuration file, environment or flag is wrong
  kUnsupported,       // a valid thing tars does not handle (architecture, type)
  kInternal,          // a bug
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] void check_failed(const char* file, int line, const char* expr);

}  // namespace tars

#define TARS_CHECK(cond)                                             \
  do {                                                               \
    if (!(cond)) ::tars::check_failed(__FILE__, __LINE__, #cond);    \
  } while (0)
