// torch.distributed on foo: a c10d Backend whose collectives run on device memory, with Gloo moving the bytes.
//
// Gloo sees each foo tensor through a CPU alias over the runtime's host view of the same memory (as kernels do, see
// kernel_scope.h), so contiguous tensors travel without a copy. Ordering follows foo streams the way NCCL follows CUDA
// streams: a collective starts after the work queued on the current stream of each tensor's device, and Work.wait()
// makes the current stream wait for it (the host goes on; work queued later on that stream runs once Gloo is done and
// the results are in place). A collective that fails after wait() returned is raised by the next call that
// synchronizes with that stream. Gloo has no AVG and needs dense buffers: AVG runs as SUM divided afterwards,
// non-contiguous tensors go through contiguous buffers.
//
// Python cannot subclass c10d::Backend, and this library has no pybind11, so the backend reaches Python through a
// ProcessGroup (a TorchScript class): torch_foo/distributed.py passes one holding a Gloo backend for the CPU, and
// attach_backend adds the foo backend to it for PrivateUse1.
//
// This is a library of its own (csrc/distributed/), built and loaded by the first process group that needs it:
// c10d's headers include all of ATen, and compiling them would add a tenth to every first `import torch_foo`.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/library.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include "foo/common.h"
#include "foo/kernel_scope.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

// What is left to do on the foo side once Gloo has finished: divide an AVG's sum, copy staged results back. Shared by
// the work and its future, whichever completes first does it.
struct Completion {
  std::once_flag once;
  std::vector<at::Tensor> results;        // the foo tensors the caller gets back
  std::vector<at::Tensor> written;        // what Gloo wrote: aliases or staging buffers
  std::vector<std::pair<at::Tensor, at::Tensor>> copy_back;  // (alias of a non-contiguous tensor, its buffer)
  int64_t average_over = 0;               // divide `written` by this (0: not an average)
  c10::DeviceIndex device = -1;           // the foo device of the tensors (-1: none)

  void run() {
    std::call_once(once, [this] {
      if (average_over > 0) {
        for (at::Tensor& t : written) t.div_(average_over);
      }
      for (auto& [alias, buffer] : copy_back) alias.copy_(buffer);
    });
  }
};

// What a stream waiting for a collective holds: Gloo's work and the completion.
struct PendingWait {
  c10::intrusive_ptr<c10d::Work> gloo;
  std::shared_ptr<Completion> completion;
};

// Deletes what stream work held, on a thread of its own. Dropping the last reference to a tensor or storage that
// Python knew, or to Gloo's work (it keeps the issuing thread's ThreadLocalState), takes the GIL; a stream worker must
// never wait for it, since a thread holding the GIL may be waiting for that stream (any kernel does).
void releaseOffStream(PendingWait* held) {
  struct Releaser {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<PendingWait*> queue;

    Releaser() {
      std::thread([this] {
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
          ready.wait(lock, [this] { return !queue.empty(); });
          PendingWait* next = queue.front();
          queue.pop_front();
          lock.unlock();
          delete next;
          lock.lock();
        }
      }).detach();
    }
  };
  static Releaser* releaser = new Releaser;  // never destroyed: its thread lives until the process exits
  {
    std::lock_guard<std::mutex> lock(releaser->mutex);
    releaser->queue.push_back(held);
  }
  releaser->ready.notify_one();
}

class FooWork final : public c10d::Work {
 public:
  FooWork(c10::intrusive_ptr<c10d::Work> gloo, std::shared_ptr<Completion> completion, int rank)
      : Work(rank, gloo->retrieveOpType()), gloo_(std::move(gloo)), completion_(std::move(completion)) {}

  bool isCompleted() override { return gloo_->isCompleted(); }
  bool isSuccess() const override { return gloo_->isSuccess(); }
  std::exception_ptr exception() const override { return gloo_->exception(); }
  int sourceRank() const override { return gloo_->sourceRank(); }
  std::vector<at::Tensor> result() override { return completion_->results; }
  void synchronize() override { wait(::kNoTimeout); }
  // As NCCL's: the current stream of the tensors' device waits for the collective, the host does not. Done (or
  // without foo tensors), it raises Gloo's error (timeout, peer gone, mismatch) here.
  bool wait(std::chrono::milliseconds timeout) override {
    if (completion_->device < 0 || gloo_->isCompleted()) return waitHere(gloo_, completion_, timeout);
    std::shared_ptr<PendingWait> pending(new PendingWait{gloo_, completion_}, &releaseOffStream);
    FOO_CHECK(foo_rt::launchAsync(currentRuntimeStream(completion_->device), [pending, timeout] {
      try {
        waitHere(pending->gloo, pending->completion, timeout);
      } catch (const c10::Error& e) {
        throw std::runtime_error(e.what_without_backtrace());
      }
    }));
    return true;
  }
  void abort() override { gloo_->abort(); }
  uint64_t getSequencenumber() const override { return gloo_->getSequencenumber(); }

  // Completes with the foo tensors once the results are in place (DDP's reducer chains on this).
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override {
    return gloo_->getFuture()->then(
        [completion = completion_](c10::ivalue::Future&) {
          completion->run();
          return c10::IValue(completion->results);
        },
        c10::ListType::create(c10::TensorType::get()));
  }

 private:
  static bool waitHere(const c10::intrusive_ptr<c10d::Work>& gloo, const std::shared_ptr<Completion>& completion,
                       std::chrono::milliseconds timeout) {
    const bool completed = gloo->wait(timeout);
    if (completed) completion->run();
    return completed;
  }

  c10::intrusive_ptr<c10d::Work> gloo_;
  std::shared_ptr<Completion> completion_;
};

template <class T, class F>
auto map(const std::vector<T>& items, F f) {
  std::vector<std::decay_t<decltype(f(items.front()))>> out;
  out.reserve(items.size());
  for (const T& item : items) out.push_back(f(item));
  return out;
}

// Turns the foo tensors of one collective into what Gloo takes, and wraps Gloo's work.
class Collective {
 public:
  explicit Collective(int rank) : rank_(rank), completion_(std::make_shared<Completion>()) {}

  // A tensor Gloo only reads.
  at::Tensor input(const at::Tensor& t) {
    noteDevice(t);
    at::Tensor alias = hostAlias(t);
    return alias.is_contiguous() ? alias : alias.contiguous();
  }
  // A tensor Gloo writes (and may read first): its current contents go in, the result comes back into it.
  at::Tensor output(const at::Tensor& t) {
    noteDevice(t);
    at::Tensor alias = hostAlias(t);
    completion_->results.push_back(t);
    if (!alias.is_contiguous()) {
      at::Tensor buffer = alias.contiguous();
      completion_->copy_back.emplace_back(alias, buffer);
      alias = buffer;
    }
    completion_->written.push_back(alias);
    return alias;
  }
  std::vector<at::Tensor> inputs(const std::vector<at::Tensor>& ts) {
    return map(ts, [this](const at::Tensor& t) { return input(t); });
  }
  std::vector<at::Tensor> outputs(const std::vector<at::Tensor>& ts) {
    return map(ts, [this](const at::Tensor& t) { return output(t); });
  }
  std::vector<std::vector<at::Tensor>> inputs(const std::vector<std::vector<at::Tensor>>& lists) {
    return map(lists, [this](const std::vector<at::Tensor>& ts) { return inputs(ts); });
  }
  std::vector<std::vector<at::Tensor>> outputs(const std::vector<std::vector<at::Tensor>>& lists) {
    return map(lists, [this](const std::vector<at::Tensor>& ts) { return outputs(ts); });
  }

  // Options for Gloo: AVG becomes SUM, whose results are divided by world_size here (where `here_gets_result`).
  template <class Options>
  Options reduceOptions(const Options& opts, int world_size, const std::vector<at::Tensor>& tensors,
                        bool here_gets_result = true) {
    if (opts.reduceOp.op_ != c10d::ReduceOp::AVG) return opts;
    for (const at::Tensor& t : tensors) {
      TORCH_CHECK(at::isFloatingType(t.scalar_type()) || at::isComplexType(t.scalar_type()),
                  "foo collectives: ReduceOp.AVG needs floating point or complex tensors, got ", t.scalar_type());
    }
    Options sum = opts;
    sum.reduceOp = c10d::ReduceOp(c10d::ReduceOp::SUM);
    if (here_gets_result) completion_->average_over = world_size;
    return sum;
  }

  c10::intrusive_ptr<c10d::Work> finish(c10::intrusive_ptr<c10d::Work> gloo) {
    return c10::make_intrusive<FooWork>(std::move(gloo), std::move(completion_), rank_);
  }

 private:
  void noteDevice(const at::Tensor& t) {
    if (completion_->device < 0 && t.defined() && t.device().type() == kFoo) completion_->device = t.device().index();
  }

  int rank_;
  std::shared_ptr<Completion> completion_;
};

class FooBackend final : public c10d::Backend {
 public:
  explicit FooBackend(c10::intrusive_ptr<c10d::Backend> gloo)
      : Backend(gloo->getRank(), gloo->getSize()), gloo_(std::move(gloo)) {}

  const std::string getBackendName() const override { return "foo"; }
  c10::intrusive_ptr<Options> getBackendOptions() override { return gloo_->getBackendOptions(); }
  void setTimeout(std::chrono::milliseconds timeout) override { gloo_->setTimeout(timeout); }
  void setSequenceNumberForGroup() override { gloo_->setSequenceNumberForGroup(); }
  uint64_t getSequenceNumberForGroup() override { return gloo_->getSequenceNumberForGroup(); }
  void abort() override { gloo_->abort(); }
  void shutdown() override { gloo_->shutdown(); }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                          const c10d::BroadcastOptions& opts) override {
    Collective c(rank_);
    auto staged = c.outputs(tensors);
    return c.finish(gloo_->broadcast(staged, opts));
  }

  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                          const c10d::AllreduceOptions& opts) override {
    Collective c(rank_);
    auto gloo_opts = c.reduceOptions(opts, size_, tensors);
    auto staged = c.outputs(tensors);
    return c.finish(gloo_->allreduce(staged, gloo_opts));
  }

  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(std::vector<at::Tensor>& tensors,
                                                    const c10d::AllreduceCoalescedOptions& opts) override {
    Collective c(rank_);
    auto gloo_opts = c.reduceOptions(opts, size_, tensors);
    auto staged = c.outputs(tensors);
    return c.finish(gloo_->allreduce_coalesced(staged, gloo_opts));
  }

  c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor>& tensors, const c10d::ReduceOptions& opts) override {
    Collective c(rank_);
    auto gloo_opts = c.reduceOptions(opts, size_, tensors, /*here_gets_result=*/rank_ == opts.rootRank);
    auto staged = c.outputs(tensors);
    return c.finish(gloo_->reduce(staged, gloo_opts));
  }

  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                          std::vector<at::Tensor>& inputs,
                                          const c10d::AllgatherOptions& opts) override {
    Collective c(rank_);
    auto staged_inputs = c.inputs(inputs);
    auto staged_outputs = c.outputs(outputs);
    return c.finish(gloo_->allgather(staged_outputs, staged_inputs, opts));
  }

  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                const c10d::AllgatherOptions& opts) override {
    Collective c(rank_);
    at::Tensor staged_input = c.input(input);
    at::Tensor staged_output = c.output(output);
    return c.finish(gloo_->_allgather_base(staged_output, staged_input, opts));
  }

  c10::intrusive_ptr<c10d::Work> allgather_coalesced(std::vector<std::vector<at::Tensor>>& outputs,
                                                    std::vector<at::Tensor>& inputs,
                                                    const c10d::AllgatherOptions& opts) override {
    Collective c(rank_);
    auto staged_inputs = c.inputs(inputs);
    auto staged_outputs = c.outputs(outputs);
    return c.finish(gloo_->allgather_coalesced(staged_outputs, staged_inputs, opts));
  }

  c10::intrusive_ptr<c10d::Work> allgather_into_tensor_coalesced(std::vector<at::Tensor>& outputs,
                                                                std::vector<at::Tensor>& inputs,
                                                                const c10d::AllgatherOptions& opts) override {
    Collective c(rank_);
    auto staged_inputs = c.inputs(inputs);
    auto staged_outputs = c.outputs(outputs);
    return c.finish(gloo_->allgather_into_tensor_coalesced(staged_outputs, staged_inputs, opts));
  }

  c10::intrusive_ptr<c10d::Work> gather(std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
                                       const c10d::GatherOptions& opts) override {
    Collective c(rank_);
    auto staged_inputs = c.inputs(inputs);
    auto staged_outputs = c.outputs(outputs);
    return c.finish(gloo_->gather(staged_outputs, staged_inputs, opts));
  }

  c10::intrusive_ptr<c10d::Work> scatter(std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
                                        const c10d::ScatterOptions& opts) override {
    Collective c(rank_);
    auto staged_inputs = c.inputs(inputs);
    auto staged_outputs = c.outputs(outputs);
    return c.finish(gloo_->scatter(staged_outputs, staged_inputs, opts));
  }

  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor>& outputs,
                                               std::vector<std::vector<at::Tensor>>& inputs,
                                               const c10d::ReduceScatterOptions& opts) override {
    Collective c(rank_);
    auto gloo_opts = c.reduceOptions(opts, size_, outputs);
    auto staged_inputs = c.inputs(inputs);
    auto staged_outputs = c.outputs(outputs);
    return c.finish(gloo_->reduce_scatter(staged_outputs, staged_inputs, gloo_opts));
  }

  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(at::Tensor& output, at::Tensor& input,
                                                     const c10d::ReduceScatterOptions& opts) override {
    Collective c(rank_);
    auto gloo_opts = c.reduceOptions(opts, size_, {output});
    at::Tensor staged_input = c.input(input);
    at::Tensor staged_output = c.output(output);
    return c.finish(gloo_->_reduce_scatter_base(staged_output, staged_input, gloo_opts));
  }

  c10::intrusive_ptr<c10d::Work> reduce_scatter_tensor_coalesced(std::vector<at::Tensor>& outputs,
                                                                std::vector<at::Tensor>& inputs,
                                                                const c10d::ReduceScatterOptions& opts) override {
    Collective c(rank_);
    auto gloo_opts = c.reduceOptions(opts, size_, outputs);
    auto staged_inputs = c.inputs(inputs);
    auto staged_outputs = c.outputs(outputs);
    return c.finish(gloo_->reduce_scatter_tensor_coalesced(staged_outputs, staged_inputs, gloo_opts));
  }

  c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor& output, at::Tensor& input,
                                              std::vector<int64_t>& output_split_sizes,
                                              std::vector<int64_t>& input_split_sizes,
                                              const c10d::AllToAllOptions& opts) override {
    Collective c(rank_);
    at::Tensor staged_input = c.input(input);
    at::Tensor staged_output = c.output(output);
    return c.finish(gloo_->alltoall_base(staged_output, staged_input, output_split_sizes, input_split_sizes, opts));
  }

  c10::intrusive_ptr<c10d::Work> alltoall(std::vector<at::Tensor>& outputs, std::vector<at::Tensor>& inputs,
                                         const c10d::AllToAllOptions& opts) override {
    Collective c(rank_);
    auto staged_inputs = c.inputs(inputs);
    auto staged_outputs = c.outputs(outputs);
    return c.finish(gloo_->alltoall(staged_outputs, staged_inputs, opts));
  }

  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dst_rank, int tag) override {
    checkPeer("destination", dst_rank);
    Collective c(rank_);
    auto staged = c.inputs(tensors);
    return c.finish(gloo_->send(staged, dst_rank, tag));
  }

  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int src_rank, int tag) override {
    checkPeer("source", src_rank);
    Collective c(rank_);
    auto staged = c.outputs(tensors);
    return c.finish(gloo_->recv(staged, src_rank, tag));
  }

  c10::intrusive_ptr<c10d::Work> recvAnysource(std::vector<at::Tensor>& tensors, int tag) override {
    Collective c(rank_);
    auto staged = c.outputs(tensors);
    return c.finish(gloo_->recvAnysource(staged, tag));
  }

  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts) override { return gloo_->barrier(opts); }

  void monitoredBarrier(const c10d::BarrierOptions& opts, bool wait_all_ranks) override {
    gloo_->monitoredBarrier(opts, wait_all_ranks);
  }

 private:
  // Gloo connects to a peer lazily and, for a rank that does not exist, waits out the whole timeout on the store
  // before it fails (on CPU tensors too); say so at once.
  void checkPeer(const char* role, int peer) const {
    TORCH_CHECK_VALUE(peer >= 0 && peer < size_, "foo: ", role, " rank ", peer,
                      " is not in the process group (ranks 0 to ", size_ - 1, ")");
  }

  c10::intrusive_ptr<c10d::Backend> gloo_;
};

// Adds the foo backend, over the Gloo backend `holder` has for the CPU, to `holder` for PrivateUse1.
void attachBackend(const c10::intrusive_ptr<c10d::ProcessGroup>& holder) {
  c10::intrusive_ptr<c10d::Backend> gloo;
  try {
    gloo = holder->getBackend(c10::kCPU);
  } catch (const c10::Error&) {
    TORCH_CHECK(false, "attach_backend: the process group has no CPU backend");
  }
  TORCH_CHECK(gloo->getBackendName() == "gloo", "attach_backend: the CPU backend must be Gloo, got ",
              gloo->getBackendName());
  holder->setBackend(kFoo, c10d::ProcessGroup::BackendType::CUSTOM, c10::make_intrusive<FooBackend>(std::move(gloo)));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("attach_backend(__torch__.torch.classes.c10d.ProcessGroup holder) -> ()", &attachBackend);
}

}  // namespace torch_foo
