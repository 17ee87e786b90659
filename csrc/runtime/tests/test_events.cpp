// Events: record, query, synchronize, timing and cross-stream waits.
#include <mutex>
#include <thread>
#include <vector>

#include "test_helpers.h"

namespace {

using foo_rt::Event;
using foo_rt::Status;
using foo_rt::Stream;
using foo_test::StreamBlocker;

class Events : public ::testing::Test {
 protected:
  void SetUp() override {
    if (foo_rt::deviceCount() < 1) GTEST_SKIP() << "needs a foo device";
    ASSERT_OK(foo_rt::streamCreate(0, &stream_));
    ASSERT_OK(foo_rt::eventCreate(&start_));
    ASSERT_OK(foo_rt::eventCreate(&end_));
  }
  void TearDown() override {
    for (Event event : {start_, end_}) {
      if (event != nullptr) {
        EXPECT_OK(foo_rt::eventDestroy(event));
      }
    }
    if (stream_ != nullptr) {
      EXPECT_OK(foo_rt::streamDestroy(stream_));
    }
  }

  Stream stream_ = nullptr;
  Event start_ = nullptr;
  Event end_ = nullptr;
};

TEST_F(Events, NeverRecordedEventIsCompleteButHasNoTime) {
  EXPECT_OK(foo_rt::eventQuery(start_));
  EXPECT_OK(foo_rt::eventSynchronize(start_));
  EXPECT_EQ(-1, foo_rt::eventDevice(start_));
  float ms = 0;
  EXPECT_EQ(Status::InvalidValue, foo_rt::eventElapsedTime(&ms, start_, end_));
  EXPECT_OK(foo_rt::streamWaitEvent(stream_, start_));
  EXPECT_TRUE(foo_rt::detail::streamIdle(stream_));  // nothing to wait for: nothing queued
}

TEST_F(Events, RecordOnAnIdleStreamCompletesAtOnce) {
  ASSERT_OK(foo_rt::eventRecord(start_, stream_));
  EXPECT_OK(foo_rt::eventQuery(start_));
  EXPECT_EQ(0, foo_rt::eventDevice(start_));
  ASSERT_OK(foo_rt::eventRecord(end_, stream_));
  float ms = -1;
  ASSERT_OK(foo_rt::eventElapsedTime(&ms, start_, end_));
  EXPECT_GE(ms, 0.0f);
  EXPECT_LT(ms, 1000.0f);
}

TEST_F(Events, RecordOnABusyStreamCompletesWhenTheStreamGetsThere) {
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::eventRecord(start_, stream_));
    EXPECT_EQ(Status::NotReady, foo_rt::eventQuery(start_));
    float ms = 0;
    EXPECT_EQ(Status::NotReady, foo_rt::eventElapsedTime(&ms, start_, start_));
  }
  ASSERT_OK(foo_rt::eventSynchronize(start_));
  EXPECT_OK(foo_rt::eventQuery(start_));
}

TEST_F(Events, ElapsedTimeCoversWorkBetweenTheRecords) {
  static constexpr int kSleepMs = 50;
  ASSERT_OK(foo_rt::eventRecord(start_, stream_));
  ASSERT_OK(foo_rt::launchAsync(stream_, [] { std::this_thread::sleep_for(std::chrono::milliseconds(kSleepMs)); }));
  ASSERT_OK(foo_rt::eventRecord(end_, stream_));
  EXPECT_EQ(Status::NotReady, foo_rt::eventQuery(end_));
  ASSERT_OK(foo_rt::eventSynchronize(end_));
  float ms = 0;
  ASSERT_OK(foo_rt::eventElapsedTime(&ms, start_, end_));
  EXPECT_GE(ms, kSleepMs - 0.01f);
}

TEST_F(Events, ElapsedTimeNeedsTimingOnBothEvents) {
  Event untimed = nullptr;
  ASSERT_OK(foo_rt::eventCreate(&untimed, foo_rt::kEventDisableTiming));
  ASSERT_OK(foo_rt::eventRecord(start_, stream_));
  ASSERT_OK(foo_rt::eventRecord(untimed, stream_));
  float ms = 0;
  EXPECT_EQ(Status::InvalidValue, foo_rt::eventElapsedTime(&ms, start_, untimed));
  EXPECT_EQ(Status::InvalidValue, foo_rt::eventElapsedTime(&ms, untimed, start_));
  EXPECT_EQ(Status::InvalidValue, foo_rt::eventElapsedTime(nullptr, start_, start_));
  EXPECT_OK(foo_rt::eventDestroy(untimed));
}

TEST_F(Events, ReRecordingReplacesThePreviousCapture) {
  Stream idle = foo_rt::defaultStream(0);
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::eventRecord(start_, stream_));
    EXPECT_EQ(Status::NotReady, foo_rt::eventQuery(start_));
    ASSERT_OK(foo_rt::eventRecord(start_, idle));
    EXPECT_OK(foo_rt::eventQuery(start_));  // the new capture is complete, whatever the old one does
  }
  ASSERT_OK(foo_rt::streamSynchronize(stream_));
  EXPECT_OK(foo_rt::eventQuery(start_));
}

TEST_F(Events, EventDeviceIsTheDeviceOfTheLastRecord) {
  if (foo_rt::deviceCount() < 2) GTEST_SKIP() << "needs two foo devices";
  ASSERT_OK(foo_rt::eventRecord(start_, foo_rt::defaultStream(1)));
  EXPECT_EQ(1, foo_rt::eventDevice(start_));
  ASSERT_OK(foo_rt::eventRecord(start_, stream_));
  EXPECT_EQ(0, foo_rt::eventDevice(start_));
}

TEST_F(Events, StreamWaitEventOrdersWorkAcrossStreamsAndDevices) {
  // The producer is a stream of device 0, the consumer the default stream of the last device.
  Stream consumer = foo_rt::defaultStream(foo_rt::deviceCount() - 1);
  std::mutex mutex;
  std::vector<const char*> order;
  auto note = [&](const char* what) {
    return [&mutex, &order, what] {
      std::lock_guard<std::mutex> lock(mutex);
      order.push_back(what);
    };
  };
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::launch(stream_, note("produce")));
    ASSERT_OK(foo_rt::eventRecord(start_, stream_));
    ASSERT_OK(foo_rt::streamWaitEvent(consumer, start_));  // returns at once: the host is not blocked
    EXPECT_EQ(Status::NotReady, foo_rt::streamQuery(consumer));
    ASSERT_OK(foo_rt::launch(consumer, note("consume")));  // queued behind the wait
    // Re-recording the event does not change what the consumer waits for.
    ASSERT_OK(foo_rt::eventRecord(start_, consumer));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_TRUE(order.empty());
  }
  ASSERT_OK(foo_rt::streamSynchronize(consumer));
  ASSERT_EQ(2u, order.size());
  EXPECT_STREQ("produce", order[0]);
  EXPECT_STREQ("consume", order[1]);
}

TEST_F(Events, DestroyingAnEventDoesNotCancelWaitsOnIt) {
  Stream consumer = foo_rt::defaultStream(0);
  bool consumed = false;
  {
    StreamBlocker blocker(stream_);
    ASSERT_OK(foo_rt::eventRecord(start_, stream_));
    ASSERT_OK(foo_rt::streamWaitEvent(consumer, start_));
    ASSERT_OK(foo_rt::eventDestroy(start_));
    start_ = nullptr;
    ASSERT_OK(foo_rt::launch(consumer, [&] { consumed = true; }));
  }
  ASSERT_OK(foo_rt::streamSynchronize(consumer));
  EXPECT_TRUE(consumed);
}

TEST_F(Events, BadHandlesAreRefused) {
  int not_an_event = 0;
  Event bogus = reinterpret_cast<Event>(&not_an_event);
  for (Event event : {static_cast<Event>(nullptr), bogus}) {
    EXPECT_EQ(Status::InvalidHandle, foo_rt::eventRecord(event, stream_));
    EXPECT_EQ(Status::InvalidHandle, foo_rt::eventQuery(event));
    EXPECT_EQ(Status::InvalidHandle, foo_rt::eventSynchronize(event));
    EXPECT_EQ(Status::InvalidHandle, foo_rt::eventDestroy(event));
    EXPECT_EQ(Status::InvalidHandle, foo_rt::streamWaitEvent(stream_, event));
    EXPECT_EQ(-1, foo_rt::eventDevice(event));
  }
  EXPECT_EQ(Status::InvalidHandle, foo_rt::eventRecord(start_, nullptr));
  EXPECT_EQ(Status::InvalidHandle, foo_rt::streamWaitEvent(nullptr, start_));
  EXPECT_EQ(Status::InvalidValue, foo_rt::eventCreate(nullptr));
  Event event = nullptr;
  EXPECT_EQ(Status::InvalidValue, foo_rt::eventCreate(&event, 4));
}

TEST_F(Events, ManyThreadsRecordAndQuery) {
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this] {
      Event event = nullptr;
      ASSERT_OK(foo_rt::eventCreate(&event, foo_rt::kEventDisableTiming));
      for (int i = 0; i < 200; ++i) {
        if (i % 10 == 0) {
          EXPECT_OK(foo_rt::launchAsync(stream_, [] {}));
        }
        EXPECT_OK(foo_rt::eventRecord(event, stream_));
        const Status status = foo_rt::eventQuery(event);
        EXPECT_TRUE(status == Status::Success || status == Status::NotReady);
        if (i % 20 == 0) {
          EXPECT_OK(foo_rt::eventSynchronize(event));
        }
      }
      EXPECT_OK(foo_rt::eventSynchronize(event));
      EXPECT_OK(foo_rt::eventDestroy(event));
    });
  }
  for (std::thread& thread : threads) thread.join();
}

}  // namespace
