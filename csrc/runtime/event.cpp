// Events: each record is a marker in the stream's order that completes (and timestamps) when the stream reaches it.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_set>

#include "runtime/foo_runtime.h"

namespace foo_rt {
namespace {

using Clock = std::chrono::steady_clock;

// One recording of an event. Shared with the marker that completes it and with the stream waits that depend on it,
// so re-recording or destroying the event never affects work already queued.
struct Capture {
  std::atomic<bool> done{false};
  Clock::time_point completed_at;  // written before done is set
  std::mutex mutex;
  std::condition_variable completed;

  void complete() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      completed_at = Clock::now();
      done.store(true, std::memory_order_release);
    }
    completed.notify_all();
  }

  void wait() {
    if (done.load(std::memory_order_acquire)) return;
    std::unique_lock<std::mutex> lock(mutex);
    completed.wait(lock, [this] { return done.load(std::memory_order_acquire); });
  }
};

}  // namespace

struct EventImpl {
  explicit EventImpl(unsigned flags) : flags(flags) {}

  const unsigned flags;
  std::mutex mutex;
  std::shared_ptr<Capture> last_record;  // nullptr until recorded
  int device = -1;                       // of the last record
};

namespace {

// Every live event, so that bad handles are refused instead of dereferenced.
struct EventRegistry {
  std::mutex mutex;
  std::unordered_set<EventImpl*> live;
};

// Never destroyed: events may be destroyed from other libraries' static destructors at exit.
EventRegistry& registry() {
  static EventRegistry* events = new EventRegistry;
  return *events;
}

// A handle check that cannot throw: the registry's first use allocates.
bool isLive(Event event) noexcept {
  try {
    EventRegistry& events = registry();
    std::lock_guard<std::mutex> lock(events.mutex);
    return events.live.count(event) != 0;
  } catch (...) {
    return false;
  }
}

std::shared_ptr<Capture> lastRecord(Event event) {
  std::lock_guard<std::mutex> lock(event->mutex);
  return event->last_record;
}

}  // namespace

Status eventCreate(Event* event, unsigned flags) {
  if (forkedChild()) return Status::ForkedChild;
  if (event == nullptr || (flags & ~unsigned{kEventDisableTiming}) != 0) return Status::InvalidValue;
  try {
    auto created = std::make_unique<EventImpl>(flags);
    EventRegistry& events = registry();
    std::lock_guard<std::mutex> lock(events.mutex);
    events.live.insert(created.get());
    *event = created.release();
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  }
  return Status::Success;
}

Status eventDestroy(Event event) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(event)) return Status::InvalidHandle;
  {
    EventRegistry& events = registry();
    std::lock_guard<std::mutex> lock(events.mutex);
    if (events.live.erase(event) == 0) return Status::InvalidHandle;  // destroyed concurrently
  }
  delete event;
  return Status::Success;
}

Status eventRecord(Event event, Stream stream) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(event)) return Status::InvalidHandle;
  const int device = streamDevice(stream);
  if (device < 0) return Status::InvalidHandle;
  try {
    auto capture = std::make_shared<Capture>();
    // On an idle stream the marker runs inline: the event completes at once.
    const Status status = launch(stream, [capture] { capture->complete(); });
    if (status != Status::Success) return status;
    std::lock_guard<std::mutex> lock(event->mutex);
    event->last_record = std::move(capture);
    event->device = device;
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  }
  return Status::Success;
}

Status eventQuery(Event event) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(event)) return Status::InvalidHandle;
  const std::shared_ptr<Capture> capture = lastRecord(event);
  if (capture == nullptr || capture->done.load(std::memory_order_acquire)) return Status::Success;
  return Status::NotReady;
}

Status eventSynchronize(Event event) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(event)) return Status::InvalidHandle;
  const std::shared_ptr<Capture> capture = lastRecord(event);
  if (capture != nullptr) capture->wait();
  return Status::Success;
}

Status streamWaitEvent(Stream stream, Event event) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(event)) return Status::InvalidHandle;
  if (streamDevice(stream) < 0) return Status::InvalidHandle;
  std::shared_ptr<Capture> capture = lastRecord(event);
  if (capture == nullptr || capture->done.load(std::memory_order_acquire)) return Status::Success;
  try {
    // Always queued, even on an idle stream: the wait must block the stream, not the caller.
    return launchAsync(stream, [capture = std::move(capture)] { capture->wait(); });
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  }
}

Status eventElapsedTime(float* ms, Event start, Event end) {
  if (ms == nullptr) return Status::InvalidValue;
  if (!isLive(start) || !isLive(end)) return Status::InvalidHandle;
  if ((start->flags & kEventDisableTiming) != 0 || (end->flags & kEventDisableTiming) != 0) {
    return Status::InvalidValue;
  }
  const std::shared_ptr<Capture> first = lastRecord(start);
  const std::shared_ptr<Capture> second = lastRecord(end);
  if (first == nullptr || second == nullptr) return Status::InvalidValue;
  if (!first->done.load(std::memory_order_acquire) || !second->done.load(std::memory_order_acquire)) {
    return Status::NotReady;
  }
  *ms = std::chrono::duration<float, std::milli>(second->completed_at - first->completed_at).count();
  return Status::Success;
}

int eventDevice(Event event) {
  if (!isLive(event)) return -1;
  std::lock_guard<std::mutex> lock(event->mutex);
  return event->device;
}

}  // namespace foo_rt
