#pragma once
// One exception type for every user-facing failure in core. Messages name the file and the field
// ("model.safetensors: tensor 'lm_head.weight': data_offsets [0, 9) out of range (file data is 8 bytes)")
// so the CLI can print them as a single line and the GUI can show them in a dialog.
#include <stdexcept>
#include <string>

namespace quench {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "<path>: <what>: <strerror(err)>", the message of a failed system call on a file.
std::string sys_error(const std::string& path, const std::string& what, int err);

// Thrown when a ProgressSink asked a job to stop; callers treat it as a clean abort, not a failure.
class Cancelled : public Error {
public:
    Cancelled() : Error("cancelled") {}
};

}  // namespace quench
