// Helpers shared by the runtime's tests.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "runtime/foo_runtime.h"

#define EXPECT_OK(expr) EXPECT_EQ(::foo_rt::Status::Success, (expr))
#define ASSERT_OK(expr) ASSERT_EQ(::foo_rt::Status::Success, (expr))

namespace foo_test {

// Tests that need at least two devices (the ctest environment provides two).
class TwoDevices : public ::testing::Test {
 protected:
  void SetUp() override {
    if (foo_rt::deviceCount() < 2) GTEST_SKIP() << "needs two foo devices";
  }
};

// Holds a stream busy until released: queues a work item that waits. The destructor releases it and waits for the
// stream, so a failing test neither hangs nor leaves the worker reading a dead blocker.
class StreamBlocker {
 public:
  explicit StreamBlocker(foo_rt::Stream stream) : stream_(stream) {
    EXPECT_OK(foo_rt::launchAsync(stream, [this] {
      while (!released_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }));
  }
  ~StreamBlocker() {
    release();
    foo_rt::streamSynchronize(stream_);
  }
  StreamBlocker(const StreamBlocker&) = delete;
  StreamBlocker& operator=(const StreamBlocker&) = delete;

  void release() { released_.store(true); }

 private:
  foo_rt::Stream stream_;
  std::atomic<bool> released_{false};
};

}  // namespace foo_test
