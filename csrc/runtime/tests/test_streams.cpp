// Streams: inline fast path, queue order, synchronization, asynchronous copies, handles and process exit.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_helpers.h"

namespace {

using foo_rt::Status;
using foo_rt::Stream;
using foo_test::StreamBlocker;
using foo_test::TwoDevices;

class Streams : public ::testing::Test {
 protected:
  void SetUp() override {
    if (foo_rt::deviceCount() < 1) GTEST_SKIP() << "needs a foo device";
    ASSERT_OK(foo_rt::streamCreate(0, &stream_));
  }
  void TearDown() override {
    if (stream_ != nullptr) {
      EXPECT_OK(foo_rt::streamDestroy(stream_));
    }
  }

  Stream stream_ = nullptr;
};

TEST_F(Streams, DefaultAndCreatedStreamsDescribeThemselves) {
  Stream default0 = foo_rt::defaultStream(0);
  ASSERT_NE(nullptr, default0);
  EXPECT_EQ(default0, foo_rt::defaultStream(0));
  EXPECT_EQ(0, foo_rt::streamId(default0));
  EXPECT_EQ(0, foo_rt::streamDevice(default0));
  EXPECT_EQ(0, foo_rt::streamPriority(default0));

  Stream high = nullptr;
  ASSERT_OK(foo_rt::streamCreate(0, &high, -1));
  EXPECT_GT(foo_rt::streamId(stream_), 0);
  EXPECT_GT(foo_rt::streamId(high), 0);
  EXPECT_NE(foo_rt::streamId(stream_), foo_rt::streamId(high));
  EXPECT_EQ(-1, foo_rt::streamPriority(high));
  EXPECT_EQ(0, foo_rt::streamPriority(stream_));
  EXPECT_OK(foo_rt::streamDestroy(high));

  Stream clamped = nullptr;
  ASSERT_OK(foo_rt::streamCreate(0, &clamped, -7));
  EXPECT_EQ(-1, foo_rt::streamPriority(clamped));
  EXPECT_OK(foo_rt::streamDestroy(clamped));
}

TEST_F(Streams, BadHandlesAreRefused) {
  int not_a_stream = 0;
  Stream bogus = reinterpret_cast<Stream>(&not_a_stream);
  for (Stream stream : {static_cast<Stream>(nullptr), bogus}) {
    EXPECT_EQ(Status::InvalidHandle, foo_rt::streamSynchronize(stream));
    EXPECT_EQ(Status::InvalidHandle, foo_rt::streamQuery(stream));
    EXPECT_EQ(Status::InvalidHandle, foo_rt::streamDestroy(stream));
    EXPECT_EQ(Status::InvalidHandle, foo_rt::launch(stream, [] {}));
    EXPECT_EQ(Status::InvalidHandle, foo_rt::launchAsync(stream, [] {}));
    EXPECT_EQ(-1, foo_rt::streamDevice(stream));
    EXPECT_EQ(-1, foo_rt::streamId(stream));
  }
  EXPECT_EQ(Status::InvalidHandle, foo_rt::runInOrder(nullptr, [] {}));
  EXPECT_EQ(Status::InvalidHandle, foo_rt::streamDestroy(foo_rt::defaultStream(0)));
  EXPECT_EQ(Status::InvalidValue, foo_rt::launch(stream_, std::function<void()>()));
  EXPECT_EQ(Status::InvalidValue, foo_rt::streamCreate(0, nullptr));
}

TEST_F(Streams, LaunchOnAnIdleStreamRunsInlineAndPropagatesExceptions) {
  std::thread::id ran_on;
  ASSERT_OK(foo_rt::launch(stream_, [&] { ran_on = std::this_thread::get_id(); }));
  EXPECT_EQ(std::this_thread::get_id(), ran_on);
  EXPECT_THROW(foo_rt::launch(stream_, [] { throw std::runtime_error("kernel failed"); }), std::runtime_error);
  EXPECT_OK(foo_rt::streamQuery(stream_));
}

TEST_F(Streams, QueuedWorkRunsInOrderOnTheWorker) {
  constexpr int kItems = 1000;
  std::vector<int> order;  // only the worker appends, one item at a time
  std::thread::id ran_on;
  {
    StreamBlocker blocker(stream_);
    EXPECT_EQ(Status::NotReady, foo_rt::streamQuery(stream_));
    EXPECT_FALSE(foo_rt::detail::streamIdle(stream_));
    for (int i = 0; i < kItems; ++i) {
      ASSERT_OK(foo_rt::launch(stream_, [&order, &ran_on, i] {
        order.push_back(i);
        ran_on = std::this_thread::get_id();
      }));
    }
    EXPECT_TRUE(order.empty());  // all queued behind the blocker
  }
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
  EXPECT_OK(foo_rt::streamQuery(stream_));
  EXPECT_TRUE(foo_rt::detail::streamIdle(stream_));
  std::vector<int> expected(kItems);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(expected, order);
  EXPECT_NE(std::this_thread::get_id(), ran_on);
}

TEST_F(Streams, RunInOrderWaitsForQueuedWork) {
  std::atomic<bool> queued_done{false};
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::launch(stream_, [&] { queued_done.store(true); }));
    blocker.release();
    bool saw_queued_work = false;
    ASSERT_OK(foo_rt::runInOrder(stream_, [&] { saw_queued_work = queued_done.load(); }));
    EXPECT_TRUE(saw_queued_work);
  }
}

TEST_F(Streams, AThrowingWorkItemDoesNotStopTheStreamAndTheNextSynchronizeReportsItOnce) {
  bool later_ran = false;
  ASSERT_OK(foo_rt::launchAsync(stream_, [] { throw std::runtime_error("first failure"); }));
  ASSERT_OK(foo_rt::launch(stream_, [] { throw std::runtime_error("second failure"); }));
  ASSERT_OK(foo_rt::launch(stream_, [&] { later_ran = true; }));
  EXPECT_EQ(Status::WorkFailed, foo_rt::streamSynchronize(stream_));
  EXPECT_TRUE(later_ran);
  const std::string expected = "stream " + std::to_string(foo_rt::streamId(stream_)) + " of foo:0: first failure";
  EXPECT_EQ(expected, foo_rt::lastWorkFailure());
  EXPECT_OK(foo_rt::streamSynchronize(stream_));  // reported: the stream is usable again
  EXPECT_OK(foo_rt::streamQuery(stream_));
}

TEST_F(Streams, AFailureOfQueuedWorkReachesQueryRunInOrderAndDeviceSynchronize) {
  // Queues a failing item and waits for it through an event (an event's synchronize reports no failure).
  auto fail = [this] {
    foo_rt::Event done = nullptr;
    ASSERT_OK(foo_rt::eventCreate(&done));
    ASSERT_OK(foo_rt::launchAsync(stream_, [] { throw std::runtime_error("expected by the test"); }));
    ASSERT_OK(foo_rt::eventRecord(done, stream_));
    ASSERT_OK(foo_rt::eventSynchronize(done));
    ASSERT_OK(foo_rt::eventDestroy(done));
  };
  fail();
  ASSERT_OK(foo_rt::streamSynchronize(foo_rt::defaultStream(0)));  // another stream's failure is not its own
  EXPECT_FALSE(foo_rt::detail::streamIdle(stream_));  // the unreported failure keeps the fast path off
  Status query = Status::NotReady;
  while (query == Status::NotReady) query = foo_rt::streamQuery(stream_);  // the event fires just before the item ends
  EXPECT_EQ(Status::WorkFailed, query);
  EXPECT_OK(foo_rt::streamQuery(stream_));

  fail();
  bool ran = false;
  EXPECT_EQ(Status::WorkFailed, foo_rt::runInOrder(stream_, [&] { ran = true; }));
  EXPECT_FALSE(ran);  // work ordered after a failure does not run on top of it
  EXPECT_OK(foo_rt::runInOrder(stream_, [&] { ran = true; }));
  EXPECT_TRUE(ran);

  fail();
  EXPECT_EQ(Status::WorkFailed, foo_rt::deviceSynchronize(0));
  EXPECT_NE(std::string::npos, std::string(foo_rt::lastWorkFailure()).find("expected by the test"));
  EXPECT_OK(foo_rt::deviceSynchronize(0));
}

TEST_F(Streams, WorkCanQueueMoreWorkAndSynchronizeItsOwnStream) {
  std::vector<int> order;
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::launch(stream_, [&] {
      order.push_back(1);
      EXPECT_OK(foo_rt::streamSynchronize(stream_));  // must not wait for itself
      EXPECT_OK(foo_rt::launch(stream_, [&] { order.push_back(3); }));  // busy: queued
      order.push_back(2);
    }));
  }
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
  EXPECT_EQ((std::vector<int>{1, 2, 3}), order);
}

TEST_F(Streams, CapturesAreReleasedBeforeSynchronizeReturns) {
  auto token = std::make_shared<int>(0);
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::launch(stream_, [token] {}));
  }
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
  EXPECT_EQ(1, token.use_count());
}

TEST_F(Streams, DestroyWaitsForPendingWork) {
  std::atomic<bool> ran{false};
  Stream doomed = nullptr;
  ASSERT_OK(foo_rt::streamCreate(0, &doomed));
  ASSERT_OK(foo_rt::launchAsync(doomed, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ran.store(true);
  }));
  ASSERT_OK(foo_rt::streamDestroy(doomed));
  EXPECT_TRUE(ran.load());
}

TEST_F(Streams, DeviceSynchronizeWaitsForEveryStreamOfTheDevice) {
  std::atomic<int> done{0};
  auto slow = [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    done.fetch_add(1);
  };
  ASSERT_OK(foo_rt::launchAsync(stream_, slow));
  ASSERT_OK(foo_rt::launchAsync(foo_rt::defaultStream(0), slow));
  ASSERT_OK(foo_rt::deviceSynchronize(0));
  EXPECT_EQ(2, done.load());
}

TEST_F(Streams, ConcurrentSubmittersAndSynchronizers) {
  constexpr int kThreads = 4;
  constexpr int kItemsPerThread = 500;
  std::atomic<int> ran{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kItemsPerThread; ++i) {
        auto count = [&ran] { ran.fetch_add(1); };
        if (i % 7 == 0) {
          EXPECT_OK(foo_rt::launchAsync(stream_, count));
        } else {
          EXPECT_OK(foo_rt::launch(stream_, count));
        }
        if (i % 50 == t) {
          EXPECT_OK(foo_rt::streamSynchronize(stream_));
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
  EXPECT_EQ(kThreads * kItemsPerThread, ran.load());
}

// A synchronize waits for the work submitted before the call, not for an empty queue: here every item queues the
// next before it ends, so the stream is never idle until `stop`.
TEST_F(Streams, SynchronizeIsNotStarvedByWorkSubmittedAfterTheCall) {
  std::atomic<bool> stop{false};
  std::function<void()> self_renewing = [&] {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (!stop.load()) {
      EXPECT_OK(foo_rt::launchAsync(stream_, self_renewing));
    }
  };
  ASSERT_OK(foo_rt::launchAsync(stream_, self_renewing));
  for (auto synchronize : {+[](Stream s) { return foo_rt::streamSynchronize(s); },
                           +[](Stream s) { return foo_rt::deviceSynchronize(foo_rt::streamDevice(s)); }}) {
    auto synchronized = std::async(std::launch::async, synchronize, stream_);
    // A hang guard, not a timing requirement: without the fix the call never returns while the chain runs.
    const bool returned = synchronized.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
    if (!returned) stop.store(true);  // ends the chain so that the starved call returns and the test can fail
    EXPECT_TRUE(returned) << "synchronize starved by work queued after it was called";
    EXPECT_OK(synchronized.get());
  }
  stop.store(true);
  ASSERT_OK(foo_rt::streamSynchronize(stream_));  // the chain has ended: each item queues at most one more
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
}

class AsyncCopies : public Streams {
 protected:
  static constexpr std::size_t kBytes = 1 << 20;

  void SetUp() override {
    Streams::SetUp();
    ASSERT_OK(foo_rt::malloc(0, &device_, kBytes));
    ASSERT_OK(foo_rt::mallocHost(&pinned_, kBytes));
  }
  void TearDown() override {
    EXPECT_OK(foo_rt::free(device_));
    EXPECT_OK(foo_rt::freeHost(pinned_));
    Streams::TearDown();
  }

  unsigned char* deviceBytes() const { return static_cast<unsigned char*>(foo_rt::hostView(device_)); }

  void* device_ = nullptr;
  void* pinned_ = nullptr;
};

TEST_F(AsyncCopies, FromPinnedMemoryQueueBehindPendingWork) {
  std::memset(pinned_, 0xab, kBytes);
  std::memset(deviceBytes(), 0, kBytes);
  bool copy_seen_by_later_work = false;
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::memcpyAsync(device_, pinned_, kBytes, stream_));
    EXPECT_EQ(0, deviceBytes()[0]);  // not copied yet: the caller did not wait
    EXPECT_EQ(Status::NotReady, foo_rt::streamQuery(stream_));
    ASSERT_OK(foo_rt::launch(stream_, [&] { copy_seen_by_later_work = deviceBytes()[kBytes - 1] == 0xab; }));
  }
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
  EXPECT_TRUE(copy_seen_by_later_work);
  EXPECT_EQ(0xab, deviceBytes()[kBytes / 2]);

  // And back to pinned memory, also queued.
  std::memset(pinned_, 0, kBytes);
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::memcpyAsync(pinned_, device_, kBytes, stream_));
    EXPECT_EQ(0, static_cast<unsigned char*>(pinned_)[0]);
  }
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
  EXPECT_EQ(0xab, static_cast<unsigned char*>(pinned_)[kBytes - 1]);
}

TEST_F(AsyncCopies, FromPageableMemoryWaitForTheStreamAndCompleteBeforeReturning) {
  std::vector<unsigned char> pageable(kBytes, 0x11);
  std::atomic<bool> earlier_work_done{false};
  ASSERT_OK(foo_rt::launchAsync(stream_, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    earlier_work_done.store(true);
  }));
  ASSERT_OK(foo_rt::memcpyAsync(device_, pageable.data(), kBytes, stream_));
  EXPECT_TRUE(earlier_work_done.load());
  pageable.assign(kBytes, 0);  // the caller may reuse its buffer at once
  EXPECT_EQ(0x11, deviceBytes()[kBytes - 1]);
}

TEST_F(AsyncCopies, RefuseBadArguments) {
  int not_a_stream = 0;
  EXPECT_EQ(Status::InvalidHandle,
            foo_rt::memcpyAsync(device_, pinned_, kBytes, reinterpret_cast<Stream>(&not_a_stream)));
  EXPECT_EQ(Status::InvalidValue, foo_rt::memcpyAsync(device_, nullptr, kBytes, stream_));
  EXPECT_EQ(Status::InvalidValue, foo_rt::memcpyAsync(device_, pinned_, kBytes + 1, stream_));
  EXPECT_OK(foo_rt::memcpyAsync(nullptr, nullptr, 0, stream_));
}

TEST_F(AsyncCopies, NullStreamMeansTheDefaultStreamOfTheDevice) {
  std::memset(pinned_, 0x22, kBytes);
  {
    StreamBlocker blocker(foo_rt::defaultStream(0));
    ASSERT_OK(foo_rt::memcpyAsync(device_, pinned_, kBytes, nullptr));
    EXPECT_EQ(Status::NotReady, foo_rt::streamQuery(foo_rt::defaultStream(0)));
  }
  ASSERT_OK(foo_rt::streamSynchronize(foo_rt::defaultStream(0)));
  EXPECT_EQ(0x22, deviceBytes()[0]);
}

// Freeing pinned memory that a queued copy reads or writes: the block stays mapped (and the copy correct) until the
// copy has run, then goes back to the system.
TEST_F(AsyncCopies, PinnedMemoryFreedUnderAQueuedCopyStaysMappedUntilTheCopyRan) {
  const long page = sysconf(_SC_PAGESIZE);
  auto isMapped = [page](void* ptr) {
    unsigned char resident = 0;
    return mincore(ptr, static_cast<std::size_t>(page), &resident) == 0;
  };
  void* source = nullptr;
  void* destination = nullptr;
  ASSERT_OK(foo_rt::mallocHost(&source, kBytes));
  ASSERT_OK(foo_rt::mallocHost(&destination, kBytes));
  std::memset(source, 0x5c, kBytes);
  std::memset(deviceBytes(), 0x3d, kBytes);
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::memcpyAsync(device_, source, kBytes, stream_));
    ASSERT_OK(foo_rt::memcpyAsync(destination, device_, kBytes, stream_));
    ASSERT_OK(foo_rt::freeHost(source));
    ASSERT_OK(foo_rt::freeHost(destination));
    EXPECT_FALSE(foo_rt::isPinned(source));  // freed for its owner ...
    EXPECT_TRUE(isMapped(source));           // ... but kept for the copy
    EXPECT_EQ(Status::InvalidValue, foo_rt::freeHost(source));
  }
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
  EXPECT_EQ(0x5c, deviceBytes()[0]);
  EXPECT_EQ(0x5c, deviceBytes()[kBytes - 1]);
  EXPECT_FALSE(isMapped(source));
  EXPECT_FALSE(isMapped(destination));
}

TEST_F(TwoDevices, SynchronousMemcpyWaitsForTheDefaultStreamsOfBothDevices) {
  constexpr std::size_t kBytes = 4096;
  void* on0 = nullptr;
  void* on1 = nullptr;
  ASSERT_OK(foo_rt::malloc(0, &on0, kBytes));
  ASSERT_OK(foo_rt::malloc(1, &on1, kBytes));
  auto* source = static_cast<unsigned char*>(foo_rt::hostView(on0));
  std::memset(source, 0, kBytes);
  // Queued producer on device 0's default stream; the synchronous copy must see its result.
  ASSERT_OK(foo_rt::launchAsync(foo_rt::defaultStream(0), [source] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::memset(source, 0x33, kBytes);
  }));
  ASSERT_OK(foo_rt::memcpy(on1, on0, kBytes));
  EXPECT_EQ(0x33, static_cast<unsigned char*>(foo_rt::hostView(on1))[kBytes - 1]);
  EXPECT_OK(foo_rt::free(on0));
  EXPECT_OK(foo_rt::free(on1));
}

TEST(ProcessExit, ExitingWithBusyWorkersIsClean) {
  if (foo_rt::deviceCount() < 1) GTEST_SKIP() << "needs a foo device";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        Stream busy = nullptr;
        Stream idle = nullptr;
        foo_rt::streamCreate(0, &busy);
        foo_rt::streamCreate(0, &idle);
        foo_rt::launchAsync(idle, [] {});
        foo_rt::streamSynchronize(idle);  // its worker now waits for work
        foo_rt::launchAsync(busy, [] { std::this_thread::sleep_for(std::chrono::hours(1)); });
        foo_rt::launch(busy, [] {});  // queued behind the sleeper, never runs
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
