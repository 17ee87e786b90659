// Devices, environment settings and statuses.
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/runtime_internal.h"
#include "test_helpers.h"

namespace {

using foo_rt::Status;
using foo_rt::detail::kDefaultDeviceCount;
using foo_rt::detail::kDefaultMemoryLimit;
using foo_rt::detail::parseDeviceCount;
using foo_rt::detail::parseMemoryLimit;

// ctest runs these with several environments and says what the runtime should make of each.
TEST(Environment, DeviceCountFollowsTheEnvironment) {
  const char* expected = std::getenv("FOO_TEST_EXPECTED_DEVICE_COUNT");
  if (expected == nullptr) GTEST_SKIP() << "run through ctest, which sets the environment";
  EXPECT_EQ(std::stoi(expected), foo_rt::deviceCount());
}

TEST(Environment, MemoryLimitFollowsTheEnvironment) {
  const char* expected = std::getenv("FOO_TEST_EXPECTED_MEMORY_LIMIT");
  if (expected == nullptr) GTEST_SKIP() << "run through ctest, which sets the environment";
  EXPECT_EQ(std::stoull(expected), foo_rt::detail::memoryLimit());
  if (foo_rt::deviceCount() > 0) {
    std::size_t free_bytes = 0, total_bytes = 0;
    ASSERT_OK(foo_rt::memGetInfo(0, &free_bytes, &total_bytes));
    EXPECT_EQ(std::stoull(expected), total_bytes);
  }
}

TEST(ParseDeviceCount, AcceptsDecimalCountsUpToTheMaximum) {
  EXPECT_EQ(0, parseDeviceCount("0"));
  EXPECT_EQ(3, parseDeviceCount("3"));
  EXPECT_EQ(foo_rt::detail::kMaxDevices, parseDeviceCount("64"));
}

TEST(ParseDeviceCount, FallsBackToTheDefault) {
  for (const char* text : {"", "two", "-1", "3x", " 3", "65", "99999999999999999999999"}) {
    EXPECT_EQ(kDefaultDeviceCount, parseDeviceCount(text)) << '"' << text << '"';
  }
  EXPECT_EQ(kDefaultDeviceCount, parseDeviceCount(nullptr));
}

TEST(ParseMemoryLimit, AcceptsBytesAndUnitSuffixes) {
  EXPECT_EQ(4096u, parseMemoryLimit("4096"));
  EXPECT_EQ(10u, parseMemoryLimit("10B"));
  EXPECT_EQ(2000u, parseMemoryLimit("2KB"));
  EXPECT_EQ(64u * 1000 * 1000, parseMemoryLimit("64MB"));
  EXPECT_EQ(3ull * 1000 * 1000 * 1000, parseMemoryLimit("3GB"));
  EXPECT_EQ(2u << 10, parseMemoryLimit("2KiB"));
  EXPECT_EQ(64u << 20, parseMemoryLimit("64MiB"));
  EXPECT_EQ(std::size_t{5} << 30, parseMemoryLimit("5GiB"));
}

TEST(ParseMemoryLimit, SuffixesAreCaseInsensitive) {
  EXPECT_EQ(64u << 20, parseMemoryLimit("64mib"));
  EXPECT_EQ(64u << 20, parseMemoryLimit("64MIB"));
  EXPECT_EQ(7u * 1000 * 1000, parseMemoryLimit("7mb"));
  EXPECT_EQ(1u << 30, parseMemoryLimit("1gIb"));
}

TEST(ParseMemoryLimit, FallsBackToTheDefault) {
  for (const char* text : {"", "0", "0MiB", "lots", "-1", "12XB", "MiB", "1.5GiB", " 64MiB", "64 MiB", "64MiBs",
                           "99999999999999999999999", "18446744073709551615GiB"}) {
    EXPECT_EQ(kDefaultMemoryLimit, parseMemoryLimit(text)) << '"' << text << '"';
  }
  EXPECT_EQ(kDefaultMemoryLimit, parseMemoryLimit(nullptr));
}

TEST(Status, EveryStatusHasItsOwnDescription) {
  std::set<std::string> descriptions;
  const Status all[] = {Status::Success,       Status::InvalidDevice, Status::OutOfMemory,    Status::InvalidValue,
                        Status::InvalidHandle, Status::NotReady,      Status::DeviceMismatch, Status::SystemError};
  for (Status s : all) {
    const std::string description = foo_rt::statusString(s);
    EXPECT_FALSE(description.empty());
    EXPECT_NE("unknown status", description);
    descriptions.insert(description);
  }
  EXPECT_EQ(std::size(all), descriptions.size());
}

TEST(Devices, CurrentDeviceIsPerThread) {
  const int count = foo_rt::deviceCount();
  if (count < 1) GTEST_SKIP() << "needs a foo device";
  constexpr int kThreads = 4;
  std::vector<int> seen_at_start(kThreads, -1), seen_at_end(kThreads, -1), seen_in_slot(kThreads, -1);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int* slot = foo_rt::detail::currentDeviceSlot();  // found before the device is set: it follows it
      foo_rt::getDevice(&seen_at_start[t]);
      foo_rt::setDevice(t % count);
      // Every thread has set its device before any reads it back.
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      foo_rt::getDevice(&seen_at_end[t]);
      seen_in_slot[t] = *slot;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(0, seen_at_start[t]) << "thread " << t;
    EXPECT_EQ(t % count, seen_at_end[t]) << "thread " << t;
    EXPECT_EQ(t % count, seen_in_slot[t]) << "thread " << t;
  }
  int main_device = -1;
  ASSERT_OK(foo_rt::getDevice(&main_device));
  EXPECT_EQ(0, main_device);
}

TEST(Devices, InvalidDeviceIsRefused) {
  const int count = foo_rt::deviceCount();
  if (count < 1) GTEST_SKIP() << "needs a foo device";
  for (int device : {-1, count, foo_rt::detail::kMaxDevices}) {
    EXPECT_EQ(Status::InvalidDevice, foo_rt::setDevice(device));
    void* ptr = nullptr;
    EXPECT_EQ(Status::InvalidDevice, foo_rt::malloc(device, &ptr, 4096));
    std::size_t free_bytes = 0, total_bytes = 0;
    EXPECT_EQ(Status::InvalidDevice, foo_rt::memGetInfo(device, &free_bytes, &total_bytes));
    EXPECT_EQ(nullptr, foo_rt::defaultStream(device));
    foo_rt::Stream stream = nullptr;
    EXPECT_EQ(Status::InvalidDevice, foo_rt::streamCreate(device, &stream));
    EXPECT_EQ(Status::InvalidDevice, foo_rt::deviceSynchronize(device));
  }
  int device = -1;
  ASSERT_OK(foo_rt::getDevice(&device));
  EXPECT_EQ(0, device);  // unchanged by the refused setDevice calls
  EXPECT_EQ(Status::InvalidValue, foo_rt::getDevice(nullptr));
}

TEST(NoDevices, DeviceBoundCallsAreRefusedAndTheRestWorks) {
  if (foo_rt::deviceCount() != 0) GTEST_SKIP() << "runs with TORCH_FOO_DEVICE_COUNT=0";
  int device = -1;
  EXPECT_EQ(Status::InvalidDevice, foo_rt::getDevice(&device));
  EXPECT_EQ(Status::InvalidDevice, foo_rt::setDevice(0));
  void* ptr = nullptr;
  EXPECT_EQ(Status::InvalidDevice, foo_rt::malloc(0, &ptr, 4096));
  EXPECT_EQ(nullptr, foo_rt::defaultStream(0));
  int local = 0;
  EXPECT_EQ(-1, foo_rt::pointerDevice(&local));
  EXPECT_EQ(nullptr, foo_rt::hostView(&local));
  void* pinned = nullptr;
  ASSERT_OK(foo_rt::mallocHost(&pinned, 100));
  EXPECT_OK(foo_rt::freeHost(pinned));
  foo_rt::Event event = nullptr;
  ASSERT_OK(foo_rt::eventCreate(&event));
  EXPECT_OK(foo_rt::eventQuery(event));
  EXPECT_OK(foo_rt::eventDestroy(event));
}

}  // namespace
