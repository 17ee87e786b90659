// Device memory (arena, sub-allocator, host alias), pinned host memory and synchronous copies.
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "runtime/runtime_internal.h"
#include "test_helpers.h"

namespace {

using foo_rt::Status;
using foo_test::TwoDevices;
constexpr std::size_t kPage = foo_rt::detail::kAllocationGranularity;

class DeviceMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    if (foo_rt::deviceCount() < 1) GTEST_SKIP() << "needs a foo device";
  }

  static std::size_t freeBytes(int device = 0) {
    std::size_t free_bytes = 0, total_bytes = 0;
    EXPECT_OK(foo_rt::memGetInfo(device, &free_bytes, &total_bytes));
    return free_bytes;
  }

  static std::size_t totalBytes(int device = 0) {
    std::size_t free_bytes = 0, total_bytes = 0;
    EXPECT_OK(foo_rt::memGetInfo(device, &free_bytes, &total_bytes));
    return total_bytes;
  }

  static void* allocate(std::size_t bytes, int device = 0) {
    void* ptr = nullptr;
    EXPECT_OK(foo_rt::malloc(device, &ptr, bytes));
    return ptr;
  }

  static char* bytesOf(void* dev_ptr) { return static_cast<char*>(foo_rt::hostView(dev_ptr)); }
};

TEST_F(DeviceMemory, MallocReturnsAlignedDeviceMemory) {
  void* ptr = allocate(1000);
  ASSERT_NE(nullptr, ptr);
  EXPECT_EQ(0u, reinterpret_cast<std::uintptr_t>(ptr) % kPage);
  EXPECT_EQ(0, foo_rt::pointerDevice(ptr));
  EXPECT_EQ(0, foo_rt::pointerDevice(static_cast<char*>(ptr) + 999));
  EXPECT_OK(foo_rt::free(ptr));
}

TEST_F(DeviceMemory, MallocOfZeroBytesGivesNull) {
  void* ptr = reinterpret_cast<void*>(1);
  EXPECT_OK(foo_rt::malloc(0, &ptr, 0));
  EXPECT_EQ(nullptr, ptr);
  EXPECT_OK(foo_rt::free(nullptr));
  EXPECT_EQ(Status::InvalidValue, foo_rt::malloc(0, nullptr, 4096));
}

TEST_F(DeviceMemory, MemGetInfoCountsWholePages) {
  const std::size_t before = freeBytes();
  EXPECT_EQ(totalBytes(), before);
  void* one_byte = allocate(1);
  EXPECT_EQ(before - kPage, freeBytes());
  void* two_pages = allocate(kPage + 1);
  EXPECT_EQ(before - 3 * kPage, freeBytes());
  EXPECT_OK(foo_rt::free(one_byte));
  EXPECT_OK(foo_rt::free(two_pages));
  EXPECT_EQ(before, freeBytes());
  std::size_t free_bytes = 0;
  EXPECT_EQ(Status::InvalidValue, foo_rt::memGetInfo(0, &free_bytes, nullptr));
}

TEST_F(DeviceMemory, FreedMemoryIsReused) {
  void* first = allocate(64 * kPage);
  ASSERT_OK(foo_rt::free(first));
  EXPECT_EQ(first, allocate(64 * kPage));
  EXPECT_OK(foo_rt::free(first));
}

TEST_F(DeviceMemory, BestFitPicksTheSmallestHoleThatFits) {
  // Layout: [a: 3 pages][b: 1 page][c: 1 page][d: 1 page], then free a and c: holes of 3 pages and 1 page.
  char* a = static_cast<char*>(allocate(3 * kPage));
  char* b = static_cast<char*>(allocate(kPage));
  char* c = static_cast<char*>(allocate(kPage));
  char* d = static_cast<char*>(allocate(kPage));
  ASSERT_EQ(a + 3 * kPage, b);
  ASSERT_EQ(b + kPage, c);
  ASSERT_OK(foo_rt::free(a));
  ASSERT_OK(foo_rt::free(c));
  EXPECT_EQ(c, allocate(kPage));
  EXPECT_EQ(a, allocate(2 * kPage));
  for (void* ptr : {static_cast<void*>(a), static_cast<void*>(b), static_cast<void*>(c), static_cast<void*>(d)}) {
    EXPECT_OK(foo_rt::free(ptr));
  }
}

TEST_F(DeviceMemory, FreeCoalescesNeighbours) {
  // Fill the whole device with four blocks; freeing the middle two in either order must leave one extent.
  const std::size_t quarter = totalBytes() / 4 / kPage * kPage;
  const std::size_t last = totalBytes() - 3 * quarter;
  char* blocks[4] = {static_cast<char*>(allocate(quarter)), static_cast<char*>(allocate(quarter)),
                     static_cast<char*>(allocate(quarter)), static_cast<char*>(allocate(last))};
  EXPECT_EQ(0u, freeBytes());
  ASSERT_OK(foo_rt::free(blocks[2]));
  ASSERT_OK(foo_rt::free(blocks[1]));
  EXPECT_EQ(blocks[1], allocate(2 * quarter));
  ASSERT_OK(foo_rt::free(blocks[1]));
  ASSERT_OK(foo_rt::free(blocks[0]));
  ASSERT_OK(foo_rt::free(blocks[3]));
  EXPECT_EQ(blocks[0], allocate(totalBytes()));  // everything merged back into one extent
  EXPECT_OK(foo_rt::free(blocks[0]));
}

TEST_F(DeviceMemory, OutOfMemoryAtTheCap) {
  void* ptr = nullptr;
  EXPECT_EQ(Status::OutOfMemory, foo_rt::malloc(0, &ptr, totalBytes() + 1));
  EXPECT_EQ(Status::OutOfMemory, foo_rt::malloc(0, &ptr, SIZE_MAX));
  void* everything = allocate(totalBytes());
  ASSERT_NE(nullptr, everything);
  EXPECT_EQ(0u, freeBytes());
  EXPECT_EQ(Status::OutOfMemory, foo_rt::malloc(0, &ptr, 1));
  EXPECT_OK(foo_rt::free(everything));
  void* page = allocate(1);
  EXPECT_NE(nullptr, page);
  EXPECT_OK(foo_rt::free(page));
}

TEST_F(DeviceMemory, FreeingWhatMallocDidNotReturnIsRefused) {
  int local = 0;
  EXPECT_EQ(Status::InvalidValue, foo_rt::free(&local));
  char* ptr = static_cast<char*>(allocate(4 * kPage));
  EXPECT_EQ(Status::InvalidValue, foo_rt::free(ptr + kPage));  // interior
  EXPECT_EQ(Status::InvalidValue, foo_rt::free(ptr + 1));
  EXPECT_EQ(Status::InvalidValue, foo_rt::free(foo_rt::hostView(ptr)));  // host alias is not a device pointer
  EXPECT_OK(foo_rt::free(ptr));
  EXPECT_EQ(Status::InvalidValue, foo_rt::free(ptr));  // double free
}

TEST_F(DeviceMemory, HostViewRoundTrip) {
  char* ptr = static_cast<char*>(allocate(3 * kPage));
  char* host = bytesOf(ptr);
  ASSERT_NE(nullptr, host);
  EXPECT_NE(static_cast<void*>(ptr), static_cast<void*>(host));
  EXPECT_EQ(host + 1234, foo_rt::hostView(ptr + 1234));
  EXPECT_EQ(ptr, foo_rt::deviceAddress(host));
  EXPECT_EQ(ptr + 1234, foo_rt::deviceAddress(host + 1234));
  EXPECT_EQ(-1, foo_rt::pointerDevice(host));
  int local = 0;
  EXPECT_EQ(nullptr, foo_rt::hostView(&local));
  EXPECT_EQ(nullptr, foo_rt::hostView(nullptr));
  EXPECT_EQ(nullptr, foo_rt::deviceAddress(&local));
  EXPECT_EQ(nullptr, foo_rt::deviceAddress(ptr));
  EXPECT_EQ(-1, foo_rt::pointerDevice(&local));

  std::memset(host, 0x5a, 3 * kPage);
  std::vector<char> back(3 * kPage);
  ASSERT_OK(foo_rt::memcpy(back.data(), ptr, back.size()));
  EXPECT_EQ(std::vector<char>(3 * kPage, 0x5a), back);
  EXPECT_OK(foo_rt::free(ptr));
}

TEST_F(DeviceMemory, HostDereferenceOfDevicePointerFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the runtime may have started threads
  void* ptr = allocate(kPage);
  EXPECT_DEATH(
      {
        volatile const char* device_byte = static_cast<const char*>(ptr);
        (void)*device_byte;
      },
      "");
  EXPECT_OK(foo_rt::free(ptr));
}

TEST_F(DeviceMemory, FreedPagesGoBackToTheSystem) {
  constexpr std::size_t kPages = 16;
  char* ptr = static_cast<char*>(allocate(kPages * kPage));
  std::memset(bytesOf(ptr), 1, kPages * kPage);
  unsigned char resident[kPages] = {};
  ASSERT_EQ(0, mincore(bytesOf(ptr), kPages * kPage, resident));
  for (unsigned char page : resident) EXPECT_TRUE(page & 1);
  char* host = bytesOf(ptr);
  ASSERT_OK(foo_rt::free(ptr));
  ASSERT_EQ(0, mincore(host, kPages * kPage, resident));
  for (unsigned char page : resident) EXPECT_FALSE(page & 1);
}

TEST_F(DeviceMemory, NoLeakAfterManyCyclesFromSeveralThreads) {
  const std::size_t total = totalBytes();
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      std::mt19937 random(t);
      std::vector<void*> held;
      for (int i = 0; i < 2000; ++i) {
        if (held.size() < 8 && random() % 3 != 0) {
          void* ptr = nullptr;
          const Status status = foo_rt::malloc(0, &ptr, 1 + random() % (64 * kPage));
          EXPECT_TRUE(status == Status::Success || status == Status::OutOfMemory);
          if (ptr != nullptr) held.push_back(ptr);
        } else if (!held.empty()) {
          EXPECT_OK(foo_rt::free(held.back()));
          held.pop_back();
        }
      }
      for (void* ptr : held) EXPECT_OK(foo_rt::free(ptr));
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(total, freeBytes());
  void* everything = allocate(total);  // fully coalesced again
  EXPECT_NE(nullptr, everything);
  EXPECT_OK(foo_rt::free(everything));
}

TEST_F(TwoDevices, EachDeviceHasItsOwnArena) {
  void* on0 = nullptr;
  void* on1 = nullptr;
  ASSERT_OK(foo_rt::malloc(0, &on0, kPage));
  ASSERT_OK(foo_rt::malloc(1, &on1, kPage));
  EXPECT_EQ(0, foo_rt::pointerDevice(on0));
  EXPECT_EQ(1, foo_rt::pointerDevice(on1));
  EXPECT_EQ(on1, foo_rt::deviceAddress(foo_rt::hostView(on1)));
  std::size_t free1 = 0, total1 = 0;
  ASSERT_OK(foo_rt::memGetInfo(1, &free1, &total1));
  EXPECT_EQ(total1 - kPage, free1);
  EXPECT_OK(foo_rt::free(on0));
  EXPECT_OK(foo_rt::free(on1));
}

TEST(PinnedMemory, AnyAddressInsideIsPinnedUntilFreed) {
  void* ptr = nullptr;
  ASSERT_OK(foo_rt::mallocHost(&ptr, 10000));
  char* bytes = static_cast<char*>(ptr);
  std::memset(bytes, 7, 10000);  // host accessible
  EXPECT_TRUE(foo_rt::isPinned(bytes));
  EXPECT_TRUE(foo_rt::isPinned(bytes + 5000));
  EXPECT_TRUE(foo_rt::isPinned(bytes + 9999));
  EXPECT_FALSE(foo_rt::isPinned(bytes + 10000));
  EXPECT_FALSE(foo_rt::isPinned(bytes - 1));
  int local = 0;
  EXPECT_FALSE(foo_rt::isPinned(&local));
  EXPECT_FALSE(foo_rt::isPinned(nullptr));
  EXPECT_EQ(Status::InvalidValue, foo_rt::freeHost(bytes + 1));
  EXPECT_OK(foo_rt::freeHost(ptr));
  EXPECT_FALSE(foo_rt::isPinned(ptr));
  EXPECT_EQ(Status::InvalidValue, foo_rt::freeHost(ptr));
  EXPECT_EQ(Status::InvalidValue, foo_rt::freeHost(&local));
  EXPECT_OK(foo_rt::freeHost(nullptr));
}

TEST(PinnedMemory, ZeroBytesGivesNull) {
  void* ptr = reinterpret_cast<void*>(1);
  EXPECT_OK(foo_rt::mallocHost(&ptr, 0));
  EXPECT_EQ(nullptr, ptr);
  EXPECT_EQ(Status::InvalidValue, foo_rt::mallocHost(nullptr, 16));
}

TEST_F(TwoDevices, MemcpyHostToDeviceToDeviceToHost) {
  constexpr std::size_t kBytes = 3 * kPage + 17;
  std::vector<unsigned char> source(kBytes);
  std::iota(source.begin(), source.end(), 0);
  void* on0 = nullptr;
  void* on1 = nullptr;
  void* also_on1 = nullptr;
  ASSERT_OK(foo_rt::malloc(0, &on0, kBytes));
  ASSERT_OK(foo_rt::malloc(1, &on1, kBytes));
  ASSERT_OK(foo_rt::malloc(1, &also_on1, kBytes));
  ASSERT_OK(foo_rt::memcpy(on0, source.data(), kBytes));
  ASSERT_OK(foo_rt::memcpy(on1, on0, kBytes));        // across devices
  ASSERT_OK(foo_rt::memcpy(also_on1, on1, kBytes));   // within a device
  std::vector<unsigned char> back(kBytes);
  ASSERT_OK(foo_rt::memcpy(back.data(), also_on1, kBytes));
  EXPECT_EQ(source, back);
  for (void* ptr : {on0, on1, also_on1}) EXPECT_OK(foo_rt::free(ptr));
}

TEST_F(DeviceMemory, MemcpyRefusesBadRanges) {
  char* ptr = static_cast<char*>(allocate(2 * kPage));
  std::vector<char> host(4 * kPage);
  EXPECT_OK(foo_rt::memcpy(nullptr, nullptr, 0));
  EXPECT_EQ(Status::InvalidValue, foo_rt::memcpy(nullptr, host.data(), 1));
  EXPECT_EQ(Status::InvalidValue, foo_rt::memcpy(host.data(), nullptr, 1));
  EXPECT_OK(foo_rt::memcpy(ptr + kPage, host.data(), kPage));  // up to the end exactly
  EXPECT_EQ(Status::InvalidValue, foo_rt::memcpy(ptr + kPage, host.data(), kPage + 1));
  EXPECT_EQ(Status::InvalidValue, foo_rt::memcpy(host.data(), ptr, 3 * kPage));
  EXPECT_OK(foo_rt::free(ptr));
  EXPECT_EQ(Status::InvalidValue, foo_rt::memcpy(host.data(), ptr, 1));  // freed
}

}  // namespace
