// PyTorch's profiler on foo: a Kineto activity profiler for torch.profiler (ProfilerActivity.PrivateUse1) and the
// profiler stubs of the event-based fallback (torch.autograd.profiler.profile(use_device="foo", use_kineto=False)).
//
// Every kernel runs inside a KernelScope, which reports it here while a session records: its device, its stream (a
// lane per stream in the trace), its start and end, and the correlation id of the operator that launched it, which
// links the device event to that operator (device time per op in key_averages()).
//
// The wheel is built with Kineto; its PrivateUse1 registry header declares the registry only under USE_KINETO.
#ifndef USE_KINETO
#define USE_KINETO
#endif

#include "foo/profiler.h"

#include <c10/util/ApproximateClock.h>
#include <torch/csrc/profiler/stubs/base.h>
#include <torch/library.h>

// Older torch releases (2.11) have no registry for a PrivateUse1 Kineto profiler: there foo kernels are not device
// events (the event-based use_device="foo" profiler still works).
#if __has_include(<torch/csrc/profiler/standalone/privateuse1_profiler.h>)
#define FOO_DEVICE_PROFILER 1
#include <libkineto.h>
#include <output_base.h>
#include <torch/csrc/profiler/standalone/privateuse1_profiler.h>
#else
#define FOO_DEVICE_PROFILER 0
#endif

#include <chrono>
#include <map>
#include <mutex>
#include <vector>

#include "foo/common.h"
#include "foo/stream.h"

namespace torch_foo {

std::atomic<bool> detail::g_tracing_kernels{false};

namespace {

// The trace's clock: Unix time, as the profiler's CPU events.
int64_t traceClockNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct KernelRecord {
  KernelTrace trace;
  c10::DeviceIndex device;
  int64_t stream_id;
  int64_t end_ns;
};

// Kernels recorded since the session started; threads append under the lock (a kernel costs microseconds at least).
std::mutex g_records_lock;
std::vector<KernelRecord> g_records;

// Correlation ids of the profiled operators the thread is inside, innermost last (Kineto pushes and pops them).
thread_local std::vector<uint64_t> t_correlation_ids;

#if FOO_DEVICE_PROFILER
class FooProfilerSession final : public libkineto::IActivityProfilerSession {
 public:
  void start() override {
    {
      std::lock_guard<std::mutex> lock(g_records_lock);
      g_records.clear();
    }
    detail::g_tracing_kernels.store(true);
    status_ = libkineto::TraceStatus::RECORDING;
  }

  void stop() override {
    detail::g_tracing_kernels.store(false);
    std::lock_guard<std::mutex> lock(g_records_lock);
    records_.swap(g_records);
    status_ = libkineto::TraceStatus::PROCESSING;
  }

  std::vector<std::string> errors() override { return {}; }

  void processTrace(libkineto::ActivityLogger& logger) override { processTrace(logger, nullptr, 0, 0); }

  void processTrace(libkineto::ActivityLogger& logger, libkineto::getLinkedActivityCallback linked_activity,
                    int64_t /*start_time*/, int64_t /*end_time*/) override {
    buffer_ = std::make_unique<libkineto::CpuTraceBuffer>();
    for (const KernelRecord& record : records_) {
      const int64_t correlation_id = record.trace.correlation_id;
      const libkineto::ITraceActivity* op =
          linked_activity && correlation_id != 0 ? linked_activity(static_cast<int32_t>(correlation_id)) : nullptr;
      std::string name = !record.trace.name.empty() ? record.trace.name : op ? op->name() : "foo kernel";
      auto kernel = std::make_unique<libkineto::GenericTraceActivity>(
          buffer_->span,
          record.trace.copy ? libkineto::ActivityType::GPU_MEMCPY : libkineto::ActivityType::CONCURRENT_KERNEL, name);
      kernel->device = record.device;
      kernel->resource = static_cast<int32_t>(record.stream_id);
      kernel->startTime = record.trace.start_ns;
      kernel->endTime = record.end_ns;
      kernel->id = static_cast<int32_t>(correlation_id);
      kernel->linked = op;
      logger.handleGenericActivity(*kernel);
      buffer_->activities.push_back(std::move(kernel));
      streams_.emplace(std::make_pair(record.device, record.stream_id), 0);
    }
    status_ = libkineto::TraceStatus::READY;
  }

  std::unique_ptr<libkineto::DeviceInfo> getDeviceInfo() override { return nullptr; }

  std::vector<libkineto::ResourceInfo> getResourceInfos() override {
    std::vector<libkineto::ResourceInfo> lanes;
    for (const auto& [key, unused] : streams_) {
      const auto& [device, stream_id] = key;
      lanes.push_back({stream_id, stream_id, device,
                       "foo:" + std::to_string(device) + " stream " + std::to_string(stream_id)});
    }
    return lanes;
  }

  std::unique_ptr<libkineto::CpuTraceBuffer> getTraceBuffer() override { return std::move(buffer_); }

  void pushCorrelationId(uint64_t id) override { t_correlation_ids.push_back(id); }
  void popCorrelationId() override {
    if (!t_correlation_ids.empty()) t_correlation_ids.pop_back();
  }

 private:
  std::vector<KernelRecord> records_;
  std::map<std::pair<c10::DeviceIndex, int64_t>, int> streams_;
  std::unique_ptr<libkineto::CpuTraceBuffer> buffer_;
};

class FooActivityProfiler final : public libkineto::IActivityProfiler {
 public:
  const std::string& name() const override { return name_; }

  const std::set<libkineto::ActivityType>& availableActivities() const override { return activities_; }

  std::unique_ptr<libkineto::IActivityProfilerSession> configure(const std::set<libkineto::ActivityType>& types,
                                                                 const libkineto::Config& /*config*/) override {
    if (!types.count(libkineto::ActivityType::CONCURRENT_KERNEL) && !types.count(libkineto::ActivityType::GPU_MEMCPY))
      return nullptr;
    return std::make_unique<FooProfilerSession>();
  }

  std::unique_ptr<libkineto::IActivityProfilerSession> configure(int64_t /*ts_ms*/, int64_t /*duration_ms*/,
                                                                 const std::set<libkineto::ActivityType>& types,
                                                                 const libkineto::Config& config) override {
    return configure(types, config);
  }

 private:
  std::string name_ = "foo";
  std::set<libkineto::ActivityType> activities_ = {libkineto::ActivityType::CONCURRENT_KERNEL,
                                                   libkineto::ActivityType::GPU_MEMCPY};
};

REGISTER_PRIVATEUSE1_PROFILER(FooActivityProfiler);
#endif

// The event-based fallback: foo events recorded on the current stream around each operator.
struct FooProfilerStubs final : public torch::profiler::impl::ProfilerStubs {
  void record(c10::DeviceIndex* device, torch::profiler::impl::ProfilerVoidEventStub* event,
              int64_t* cpu_ns) const override {
    const c10::DeviceIndex current = currentDevice();
    if (device != nullptr) *device = current;
    foo_rt::Event raw = nullptr;
    FOO_CHECK(foo_rt::eventCreate(&raw));
    *event = std::shared_ptr<void>(raw, [](void* e) { foo_rt::eventDestroy(static_cast<foo_rt::Event>(e)); });
    if (cpu_ns != nullptr) *cpu_ns = c10::getTime();
    FOO_CHECK(foo_rt::eventRecord(raw, currentRuntimeStream(current)));
  }

  float elapsed(const torch::profiler::impl::ProfilerVoidEventStub* start,
                const torch::profiler::impl::ProfilerVoidEventStub* end) const override {
    auto* first = static_cast<foo_rt::Event>(start->get());
    auto* second = static_cast<foo_rt::Event>(end->get());
    FOO_CHECK(foo_rt::eventSynchronize(first));
    FOO_CHECK(foo_rt::eventSynchronize(second));
    float ms = 0;
    FOO_CHECK(foo_rt::eventElapsedTime(&ms, first, second));
    return ms * 1000.0f;  // the profiler wants microseconds
  }

  // foo has no external tracing tool (as NVTX is CUDA's) to send marks and ranges to.
  void mark(const char* /*name*/) const override {}
  void rangePush(const char* /*name*/) const override {}
  void rangePop() const override {}

  bool enabled() const override { return true; }

  void onEachDevice(std::function<void(int)> op) const override {
    for (c10::DeviceIndex d = 0; d < deviceCount(); ++d) {
      DeviceScope scope(d);
      op(d);
    }
  }

  void synchronize() const override {
    for (c10::DeviceIndex d = 0; d < deviceCount(); ++d) FOO_CHECK(foo_rt::deviceSynchronize(d));
  }
};

const bool g_stubs_registered = [] {
  static FooProfilerStubs stubs;
  torch::profiler::impl::registerPrivateUse1Methods(&stubs);
  return true;
}();

}  // namespace

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("records_device_events() -> bool", [] { return static_cast<bool>(FOO_DEVICE_PROFILER); });
}

void beginKernelTrace(KernelTrace& trace) {
  trace.start_ns = traceClockNs();
  trace.correlation_id = t_correlation_ids.empty() ? 0 : static_cast<int64_t>(t_correlation_ids.back());
}

void endKernelTrace(const KernelTrace& trace, c10::DeviceIndex device, int64_t stream_id) {
  const int64_t end_ns = traceClockNs();
  std::lock_guard<std::mutex> lock(g_records_lock);
  g_records.push_back({trace, device, stream_id, end_ns});
}

namespace {

// CUDA's names for a copy's direction and memory kinds.
std::string copyName(void* dst, const void* src) {
  auto side = [](const void* p) { return foo_rt::pointerDevice(p) >= 0 ? 'D' : 'H'; };
  auto kind = [](const void* p) {
    return foo_rt::pointerDevice(p) >= 0 ? "Device" : foo_rt::isPinned(p) ? "Pinned" : "Pageable";
  };
  return std::string("Memcpy ") + side(src) + "to" + side(dst) + " (" + kind(src) + " -> " + kind(dst) + ")";
}

}  // namespace

void traceCopy(c10::DeviceIndex device, void* dst, const void* src, const std::function<void()>& queue_copy) {
  // Markers in stream order around the copy: they run inline when the stream is idle, else on its worker.
  const foo_rt::Stream stream = currentRuntimeStream(device);
  auto trace = std::make_shared<KernelTrace>();
  beginKernelTrace(*trace);
  trace->name = copyName(dst, src);
  trace->copy = true;
  FOO_CHECK(foo_rt::launch(stream, [trace] { trace->start_ns = traceClockNs(); }));
  queue_copy();
  FOO_CHECK(foo_rt::launch(stream, [trace, device, stream_id = currentStreamId(device)] {
    endKernelTrace(*trace, device, stream_id);
  }));
}

}  // namespace torch_foo
