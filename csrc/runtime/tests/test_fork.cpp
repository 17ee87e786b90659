// fork() after the runtime was used: the child shares the parent's device memory but has none of its stream worker
// threads, so it must get ForkedChild errors (not hangs, not writes into the parent's memory).
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "test_helpers.h"

namespace {

using foo_rt::Status;
using foo_test::StreamBlocker;

// Runs checks in a forked child; the child's exit code is the number of failed checks.
template <class F>
int failuresInForkedChild(F checks) {
  const pid_t pid = fork();
  if (pid == 0) _exit(checks());
  int status = 0;
  EXPECT_EQ(pid, waitpid(pid, &status, 0));
  EXPECT_TRUE(WIFEXITED(status)) << "child died with status " << status;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Fork, ChildGetsErrorsAndLeavesTheParentsMemoryAndStreamsAlone) {
  constexpr std::size_t kBytes = 1 << 16;
  std::vector<unsigned char> pattern(kBytes), back(kBytes);
  for (std::size_t i = 0; i < kBytes; ++i) pattern[i] = static_cast<unsigned char>(i * 7);
  void* device_ptr = nullptr;
  ASSERT_OK(foo_rt::malloc(0, &device_ptr, kBytes));
  ASSERT_OK(foo_rt::memcpy(device_ptr, pattern.data(), kBytes));
  foo_rt::Stream stream = nullptr;
  ASSERT_OK(foo_rt::streamCreate(0, &stream));
  foo_rt::Event event = nullptr;
  ASSERT_OK(foo_rt::eventCreate(&event));
  {
    StreamBlocker busy(stream);  // work pending on a worker thread the child will not have
    ASSERT_OK(foo_rt::eventRecord(event, stream));
    EXPECT_FALSE(foo_rt::forkedChild());

    const int failures = failuresInForkedChild([&] {
      int failed = !foo_rt::forkedChild();
      void* ptr = nullptr;
      failed += foo_rt::malloc(0, &ptr, kBytes) != Status::ForkedChild;
      std::vector<unsigned char> zeros(kBytes, 0);
      failed += foo_rt::memcpy(device_ptr, zeros.data(), kBytes) != Status::ForkedChild;
      failed += foo_rt::streamSynchronize(stream) != Status::ForkedChild;  // would wait forever
      failed += foo_rt::deviceSynchronize(0) != Status::ForkedChild;
      failed += foo_rt::eventSynchronize(event) != Status::ForkedChild;
      failed += foo_rt::launch(stream, [] {}) != Status::ForkedChild;
      failed += foo_rt::runInOrder(foo_rt::defaultStream(0), [] {}) != Status::ForkedChild;
      foo_rt::Event child_event = nullptr;
      failed += foo_rt::eventCreate(&child_event) != Status::ForkedChild;
      failed += foo_rt::free(device_ptr) != Status::Success;  // a no-op: the memory is the parent's
      return failed;
    });
    EXPECT_EQ(0, failures);
  }
  EXPECT_FALSE(foo_rt::forkedChild());
  EXPECT_OK(foo_rt::streamSynchronize(stream));
  EXPECT_OK(foo_rt::memcpy(back.data(), device_ptr, kBytes));
  EXPECT_EQ(0, std::memcmp(back.data(), pattern.data(), kBytes));
  EXPECT_OK(foo_rt::eventDestroy(event));
  EXPECT_OK(foo_rt::streamDestroy(stream));
  EXPECT_OK(foo_rt::free(device_ptr));
}

}  // namespace
