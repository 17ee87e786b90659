#include "runtime/foo_runtime.h"

namespace foo_rt {

const char* statusString(Status s) {
  switch (s) {
    case Status::Success:
      return "success";
    case Status::InvalidDevice:
      return "invalid device index";
    case Status::OutOfMemory:
      return "out of device memory";
    case Status::InvalidValue:
      return "invalid argument";
    case Status::InvalidHandle:
      return "invalid stream or event handle";
    case Status::NotReady:
      return "work still pending";
    case Status::DeviceMismatch:
      return "stream or event belongs to another device";
    case Status::SystemError:
      return "system error (memfd, mmap or thread creation failed)";
    case Status::ForkedChild:
      return "the foo runtime was in use before this process was forked, and a forked child cannot use it: start "
             "child processes with the 'spawn' or 'forkserver' method";
    case Status::WorkFailed:
      return "work queued on a foo stream failed";
  }
  return "unknown status";
}

}  // namespace foo_rt
