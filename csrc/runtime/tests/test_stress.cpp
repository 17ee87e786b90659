// Concurrency stress: threads on both devices do at once what the PyTorch integration does (allocation, asynchronous
// copies from pinned memory, kernels inline and queued, events across streams and devices, streams created and
// destroyed, device synchronization) and check every result. Run under TSan and ASan by CI, this is where races and
// lifetime errors in the stream queues, registries and arenas show up.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "test_helpers.h"

namespace {

using foo_test::TwoDevices;

constexpr int kWorkers = 6;
constexpr int kRoundsPerWorker = 300;
constexpr std::size_t kMaxValues = 20000;

// Uploads values on `producer`, transforms them on `consumer` (ordered by an event), downloads them and checks them.
void uploadTransformDownload(int device, foo_rt::Stream producer, foo_rt::Stream consumer, std::mt19937& rng) {
  const std::size_t count = std::uniform_int_distribution<std::size_t>(1, kMaxValues)(rng);
  const std::size_t bytes = count * sizeof(std::uint32_t);
  const std::uint32_t first = static_cast<std::uint32_t>(rng());
  void* upload = nullptr;  // pinned, as are downloads: the copies are asynchronous
  void* download = nullptr;
  void* device_data = nullptr;
  ASSERT_OK(foo_rt::mallocHost(&upload, bytes));
  ASSERT_OK(foo_rt::mallocHost(&download, bytes));
  ASSERT_OK(foo_rt::malloc(device, &device_data, bytes));
  auto* uploaded_values = static_cast<std::uint32_t*>(upload);
  for (std::size_t i = 0; i < count; ++i) uploaded_values[i] = first + static_cast<std::uint32_t>(i);

  foo_rt::Event uploaded = nullptr;
  ASSERT_OK(foo_rt::eventCreate(&uploaded, foo_rt::kEventDisableTiming));
  ASSERT_OK(foo_rt::memcpyAsync(device_data, upload, bytes, producer));
  ASSERT_OK(foo_rt::eventRecord(uploaded, producer));
  ASSERT_OK(foo_rt::streamWaitEvent(consumer, uploaded));
  ASSERT_OK(foo_rt::eventDestroy(uploaded));  // the queued wait keeps what it needs
  auto* values = static_cast<std::uint32_t*>(foo_rt::hostView(device_data));
  ASSERT_OK(foo_rt::launch(consumer, [values, count] {
    for (std::size_t i = 0; i < count; ++i) values[i] = values[i] * 3 + 1;
  }));
  ASSERT_OK(foo_rt::memcpyAsync(download, device_data, bytes, consumer));
  ASSERT_OK(foo_rt::streamSynchronize(consumer));

  const auto* downloaded_values = static_cast<const std::uint32_t*>(download);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < count; ++i) {
    wrong += downloaded_values[i] != (first + static_cast<std::uint32_t>(i)) * 3 + 1;
  }
  EXPECT_EQ(0u, wrong) << "of " << count << " values on foo:" << device;
  EXPECT_OK(foo_rt::free(device_data));
  EXPECT_OK(foo_rt::freeHost(upload));
  EXPECT_OK(foo_rt::freeHost(download));
}

TEST_F(TwoDevices, StressEverythingAtOnceFromManyThreads) {
  std::size_t free_before[2] = {};
  for (int device = 0; device < 2; ++device) {
    std::size_t total = 0;
    ASSERT_OK(foo_rt::memGetInfo(device, &free_before[device], &total));
  }

  std::atomic<bool> workers_done{false};
  // Synchronizes whole devices while streams come and go.
  std::thread synchronizer([&] {
    while (!workers_done.load()) {
      for (int device = 0; device < 2; ++device) EXPECT_OK(foo_rt::deviceSynchronize(device));
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([w] {
      std::mt19937 rng(w);
      const int device = w % 2;
      for (int round = 0; round < kRoundsPerWorker; ++round) {
        // The producer is a stream created for the round; the consumer a default stream that other threads submit
        // to as well, sometimes the other device's.
        foo_rt::Stream producer = nullptr;
        ASSERT_OK(foo_rt::streamCreate(device, &producer));
        const int consumer_device = rng() % 4 == 0 ? 1 - device : device;
        uploadTransformDownload(device, producer, foo_rt::defaultStream(consumer_device), rng);
        EXPECT_OK(foo_rt::streamDestroy(producer));
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  workers_done.store(true);
  synchronizer.join();

  for (int device = 0; device < 2; ++device) {
    std::size_t free_after = 0, total = 0;
    ASSERT_OK(foo_rt::memGetInfo(device, &free_after, &total));
    EXPECT_EQ(free_before[device], free_after) << "foo:" << device;
  }
}

}  // namespace
