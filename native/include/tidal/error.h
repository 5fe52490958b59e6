// Exceptions the engine throws across its public surface. Messages are written for the
// person who has to act on them: what was found, what was expected, what to do.
#pragma once
#include <stdexcept>
#include <string>

namespace tidal {

// Base of every engine error.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A model folder or file that cannot be used: missing, truncated, malformed, unsupported.
struct ModelError : Error {
  using Error::Error;
};

// A request that cannot be served as asked: bad argument, unknown sequence, too long.
struct RequestError : Error {
  using Error::Error;
};

// Memory could not be had (host or device).
struct OutOfMemoryError : Error {
  using Error::Error;
};

// The request was cancelled by the caller.
struct CancelledError : Error {
  using Error::Error;
};

}  // namespace tidal
