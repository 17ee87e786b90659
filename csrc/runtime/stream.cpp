// Streams: a FIFO of work per stream, run by a worker thread started on first use; an idle stream runs launched work
// inline on the caller.
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/foo_runtime.h"
#include "runtime/runtime_internal.h"

namespace foo_rt {

struct StreamImpl {
  StreamImpl(int device, int priority, std::int64_t id) : device(device), priority(priority), id(id) {}

  const int device;
  const int priority;
  const std::int64_t id;

  // Items queued or running on the worker. Changed under mutex; read without it by the idle test of the fast path.
  std::atomic<std::int64_t> pending{0};
  // Set by the worker when queued work threw and no synchronizing call has reported it yet (failure says what).
  std::atomic<bool> failed{false};
  std::mutex mutex;
  std::condition_variable work_available;
  std::condition_variable item_done;
  // Items ever queued / ever finished (under mutex): a synchronize waits until `finished` reaches the `queued` it
  // saw at call time, so submitters that keep the queue busy cannot starve it.
  std::uint64_t queued = 0;
  std::uint64_t finished = 0;
  std::deque<std::function<void()>> queue;
  std::thread worker;     // started by the first queued item
  bool stopping = false;  // set by streamDestroy; the worker exits once the queue is empty
  std::string failure;    // the first unreported failure of queued work (under mutex)
};

namespace {

// The stream whose worker is the calling thread, if any.
thread_local StreamImpl* t_worker_stream = nullptr;
// What the calling thread's last WorkFailed status reported.
thread_local std::string t_last_work_failure;

// Every live stream, so that bad handles are refused instead of dereferenced. Shared ownership lets
// deviceSynchronize wait on a stream that another thread destroys meanwhile.
class StreamRegistry {
 public:
  StreamRegistry() {
    for (int device = 0; device < deviceCount(); ++device) {
      defaults_.push_back(std::make_shared<StreamImpl>(device, 0, 0));
      live_.emplace(defaults_.back().get(), defaults_.back());
    }
  }

  Stream defaultStream(int device) const { return defaults_[device].get(); }

  bool isLive(Stream stream) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return live_.count(stream) != 0;
  }

  void add(std::shared_ptr<StreamImpl> stream) {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    live_.emplace(stream.get(), std::move(stream));
  }

  // Unregisters a created stream; nullptr if stream is unknown or a default stream.
  std::shared_ptr<StreamImpl> remove(Stream stream) {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    auto it = live_.find(stream);
    if (it == live_.end() || it->second->id == 0) return nullptr;
    std::shared_ptr<StreamImpl> owned = std::move(it->second);
    live_.erase(it);
    return owned;
  }

  std::vector<std::shared_ptr<StreamImpl>> streamsOf(int device) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    std::vector<std::shared_ptr<StreamImpl>> streams;
    for (const auto& entry : live_) {
      if (entry.second->device == device) streams.push_back(entry.second);
    }
    return streams;
  }

 private:
  mutable std::shared_mutex mutex_;
  std::vector<std::shared_ptr<StreamImpl>> defaults_;
  std::unordered_map<StreamImpl*, std::shared_ptr<StreamImpl>> live_;
};

// Never destroyed: worker threads may still be running when the process exits.
StreamRegistry& registry() {
  static StreamRegistry* streams = new StreamRegistry;
  return *streams;
}

// A handle check that cannot throw: the registry's first use allocates.
bool isLive(Stream stream) noexcept {
  try {
    return registry().isLive(stream);
  } catch (...) {
    return false;
  }
}

std::atomic<std::int64_t> g_next_stream_id{1};

// Work on a worker has no caller to throw to: the stream keeps the failure for the next call that synchronizes with
// it (as an asynchronous CUDA error surfaces at the next synchronizing call), and carries on with the next item.
void runKeepingFailures(StreamImpl& stream, const std::function<void()>& work) {
  std::string what;
  try {
    work();
    return;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "a non-standard exception";
  }
  std::lock_guard<std::mutex> lock(stream.mutex);
  if (stream.failure.empty()) {
    stream.failure = "stream " + std::to_string(stream.id) + " of foo:" + std::to_string(stream.device) + ": " + what;
  }
  stream.failed.store(true, std::memory_order_release);  // before the item counts as done: streamIdle sees both
}

// Reports (and forgets) the stream's unreported failure, if any.
Status takeFailure(StreamImpl* stream) {
  if (!stream->failed.load(std::memory_order_acquire)) return Status::Success;
  std::lock_guard<std::mutex> lock(stream->mutex);
  if (!stream->failed.load(std::memory_order_relaxed)) return Status::Success;  // another thread reported it
  t_last_work_failure = std::move(stream->failure);
  stream->failure.clear();
  stream->failed.store(false, std::memory_order_relaxed);
  return Status::WorkFailed;
}

void runWorker(StreamImpl* stream) {
  t_worker_stream = stream;
  const std::string name = "foo" + std::to_string(stream->device) + "-s" + std::to_string(stream->id);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  std::unique_lock<std::mutex> lock(stream->mutex);
  for (;;) {
    stream->work_available.wait(lock, [stream] { return !stream->queue.empty() || stream->stopping; });
    if (stream->queue.empty()) return;
    std::function<void()> work = std::move(stream->queue.front());
    stream->queue.pop_front();
    lock.unlock();
    runKeepingFailures(*stream, work);
    work = nullptr;  // what the work captured dies before the item counts as done
    lock.lock();
    ++stream->finished;
    stream->pending.fetch_sub(1, std::memory_order_acq_rel);
    stream->item_done.notify_all();
  }
}

Status enqueue(StreamImpl* stream, std::function<void()>&& work) {
  try {
    std::lock_guard<std::mutex> lock(stream->mutex);
    if (!stream->worker.joinable()) {
      detail::markInUse();
      stream->worker = std::thread(runWorker, stream);
    }
    stream->queue.push_back(std::move(work));
    ++stream->queued;
    stream->pending.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  } catch (const std::system_error&) {
    return Status::SystemError;
  }
  stream->work_available.notify_one();
  return Status::Success;
}

// The count of items queued on the stream so far: the mark a synchronize waits for.
std::uint64_t submittedMark(StreamImpl* stream) {
  std::lock_guard<std::mutex> lock(stream->mutex);
  return stream->queued;
}

// Waits until the stream has finished the items up to `mark` (work queued later is not waited for).
void waitForMark(StreamImpl* stream, std::uint64_t mark) {
  // Work running on this very stream: everything queued before it has run, and later work cannot run until it ends.
  if (t_worker_stream == stream) return;
  std::unique_lock<std::mutex> lock(stream->mutex);
  stream->item_done.wait(lock, [stream, mark] { return stream->finished >= mark; });
}

void waitForSubmittedWork(StreamImpl* stream) {
  if (detail::streamIdle(stream)) return;
  waitForMark(stream, submittedMark(stream));
}

}  // namespace

namespace detail {

bool streamIdle(Stream stream) noexcept {
  return stream->pending.load(std::memory_order_acquire) == 0 && !stream->failed.load(std::memory_order_relaxed);
}

}  // namespace detail

Stream defaultStream(int device) {
  if (!detail::isValidDevice(device)) return nullptr;
  try {
    return registry().defaultStream(device);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

Status streamCreate(int device, Stream* stream, int priority) {
  if (forkedChild()) return Status::ForkedChild;
  if (stream == nullptr) return Status::InvalidValue;
  if (!detail::isValidDevice(device)) return Status::InvalidDevice;
  const int clamped_priority = priority < -1 ? -1 : (priority > 0 ? 0 : priority);
  try {
    auto created = std::make_shared<StreamImpl>(device, clamped_priority, g_next_stream_id.fetch_add(1));
    *stream = created.get();
    registry().add(std::move(created));
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  }
  return Status::Success;
}

Status streamDestroy(Stream stream) {
  if (forkedChild()) return Status::ForkedChild;
  if (stream == nullptr) return Status::InvalidHandle;
  if (t_worker_stream == stream) return Status::InvalidValue;  // its worker cannot join itself
  std::shared_ptr<StreamImpl> owned = registry().remove(stream);
  if (owned == nullptr) return Status::InvalidHandle;
  {
    std::lock_guard<std::mutex> lock(owned->mutex);
    owned->stopping = true;
  }
  owned->work_available.notify_one();
  if (owned->worker.joinable()) owned->worker.join();  // the worker drains the queue before it exits
  return Status::Success;
}

int streamDevice(Stream stream) { return isLive(stream) ? stream->device : -1; }

int streamPriority(Stream stream) { return isLive(stream) ? stream->priority : 0; }

std::int64_t streamId(Stream stream) { return isLive(stream) ? stream->id : -1; }

bool onStreamWorker() noexcept { return t_worker_stream != nullptr; }

const char* lastWorkFailure() noexcept { return t_last_work_failure.c_str(); }

Status streamQuery(Stream stream) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(stream)) return Status::InvalidHandle;
  if (stream->pending.load(std::memory_order_acquire) != 0) return Status::NotReady;
  return takeFailure(stream);
}

Status streamSynchronize(Stream stream) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(stream)) return Status::InvalidHandle;
  waitForSubmittedWork(stream);
  return takeFailure(stream);
}

Status deviceSynchronize(int device) {
  if (forkedChild()) return Status::ForkedChild;
  if (!detail::isValidDevice(device)) return Status::InvalidDevice;
  try {
    // Marks taken on every stream first: the work submitted before the call, whichever stream it went to.
    std::vector<std::pair<std::shared_ptr<StreamImpl>, std::uint64_t>> marks;
    for (auto& stream : registry().streamsOf(device)) {
      const std::uint64_t mark = submittedMark(stream.get());
      marks.emplace_back(std::move(stream), mark);
    }
    for (const auto& [stream, mark] : marks) waitForMark(stream.get(), mark);
    for (const auto& [stream, mark] : marks) {
      if (takeFailure(stream.get()) != Status::Success) return Status::WorkFailed;  // the others stay for later calls
    }
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  }
  return Status::Success;
}

Status launch(Stream stream, std::function<void()> work) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(stream)) return Status::InvalidHandle;
  if (!work) return Status::InvalidValue;
  if (!detail::streamIdle(stream)) return enqueue(stream, std::move(work));
  work();  // the one call whose exception reaches the caller: the work's own
  return Status::Success;
}

Status launchAsync(Stream stream, std::function<void()> work) {
  if (forkedChild()) return Status::ForkedChild;
  if (!isLive(stream)) return Status::InvalidHandle;
  if (!work) return Status::InvalidValue;
  return enqueue(stream, std::move(work));
}

}  // namespace foo_rt
