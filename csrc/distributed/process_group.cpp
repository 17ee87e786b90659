// torch.distributed on foo: a c10d Backend whose collectives run on device memory, with Gloo moving the bytes.
//
// Gloo sees each foo tensor through a CPU alias over the runtime's host view of the same memory (as kernels do, see
// kernel_scope.h), so contiguous tensors travel without a copy. Ordering follows foo streams the way NCCL follows CUDA
// streams, and no call makes the host wait for its peers: a collective starts after the work queued before the call
// on the current stream of each tensor's device, and Work.wait() makes the current stream wait for it (work queued
// later on that stream runs once Gloo is done and the results are in place). A collective that fails after wait()
// returned is raised by the next call that synchronizes with that stream. Gloo has no AVG and needs dense buffers:
// AVG runs as SUM divided afterwards, non-contiguous tensors go through contiguous buffers.
//
// Gloo aborts the process when ranks give one collective different sizes (its transport thread throws). So before
// Gloo sees a collective, the ranks exchange its signature (operation, root, reduction, dtypes and shapes) over a
// Gloo group of their own, and a disagreement fails the collective on every rank with a message saying what each
// called. A thread per backend issues Gloo's work in call order (Gloo's tags follow that order, which must be the same
// on every rank) once the signatures agree and the streams have reached the call; the signatures of calls queued
// together travel in one exchange, started while the thread waits for the streams. A send puts its signature ahead of
// the data, and the receive takes the data (on a second thread) only if it fits: a larger message is dropped with an
// error where Gloo would abort.
//
// Python cannot subclass c10d::Backend, and this library has no pybind11, so the backend reaches Python through a
// ProcessGroup (a TorchScript class): torch_foo/distributed.py passes one holding a Gloo backend for the CPU (and a
// second one holding the signatures' Gloo backend), and attach_backend adds the foo backend to it for PrivateUse1.
//
// This is a library of its own (csrc/distributed/), built and loaded by the first process group that needs it:
// c10d's headers include all of ATen, and compiling them would add a tenth to every first `import torch_foo`.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/library.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include "foo/common.h"
#include "foo/kernel_scope.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

// Something a stream worker or the issuing thread lets go of through releaseElsewhere.
struct Held {
  virtual ~Held() = default;
};

// Deletes `held` on a thread of its own. Dropping the last reference to a tensor or storage that Python knew, or to
// Gloo's work (it keeps the issuing thread's ThreadLocalState), takes the GIL; neither a stream worker nor the issuing
// thread may wait for it, since a thread holding the GIL may be waiting for them (any kernel waits for its stream, and
// a stream waiting for a collective waits for the issuing thread).
void releaseElsewhere(Held* held) {
  struct Releaser {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<Held*> queue;

    Releaser() {
      std::thread([this] {
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
          ready.wait(lock, [this] { return !queue.empty(); });
          Held* next = queue.front();
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

// What is left to do on the foo side once Gloo has finished: divide an AVG's sum, copy staged results back. Whichever
// completes first (a wait or the future) does it.
struct Completion {
  std::once_flag once;
  std::vector<at::Tensor> results;        // the foo tensors the caller gets back
  std::vector<at::Tensor> written;        // what Gloo wrote: aliases or staging buffers
  std::vector<std::pair<at::Tensor, at::Tensor>> copy_back;  // (alias of a non-contiguous tensor, its buffer)
  int64_t average_over = 0;               // divide `written` by this (0: not an average)
  c10::DeviceIndex device = -1;           // the foo device of the tensors (-1: none)
  std::vector<c10::intrusive_ptr<c10d::Work>> companions;  // Gloo's other work for the call (a send's header)

  void run() {
    std::call_once(once, [this] {
      if (average_over > 0) {
        for (at::Tensor& t : written) t.div_(average_over);
      }
      for (auto& [alias, buffer] : copy_back) alias.copy_(buffer);
    });
  }
};

// One collective as the caller's work sees it: Gloo's work once the issuing thread has started it, or why it could
// not (the ranks disagreed, a peer is gone, Gloo refused the arguments).
class Issue {
 public:
  explicit Issue(std::shared_ptr<Completion> completion) : completion_(std::move(completion)) {}

  void started(c10::intrusive_ptr<c10d::Work> gloo) { settle(std::move(gloo), nullptr); }
  void failed(std::exception_ptr error) { settle(nullptr, std::move(error)); }

  // Gloo's work, once started (waits for that); raises why the collective could not start.
  c10::intrusive_ptr<c10d::Work> gloo() {
    std::unique_lock<std::mutex> lock(mutex_);
    settled_cv_.wait(lock, [this] { return settled_; });
    if (error_) std::rethrow_exception(error_);
    return gloo_;
  }
  bool isCompleted() {
    std::lock_guard<std::mutex> lock(mutex_);
    return settled_ && (error_ || gloo_->isCompleted());
  }
  bool isSuccess() {
    std::lock_guard<std::mutex> lock(mutex_);
    return settled_ && !error_ && gloo_->isSuccess();
  }
  std::exception_ptr exception() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_ || gloo_ == nullptr) return error_;
    return gloo_->exception();
  }
  void abort() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (gloo_ != nullptr) gloo_->abort();
  }
  // Completes with the foo tensors once the results are in place (DDP's reducer chains on this).
  c10::intrusive_ptr<c10::ivalue::Future> future() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (future_ == nullptr) {
      future_ = c10::make_intrusive<c10::ivalue::Future>(c10::ListType::create(c10::TensorType::get()));
      if (settled_) {
        lock.unlock();
        chainFuture();
      }
    }
    return future_;
  }
  const std::shared_ptr<Completion>& completion() const { return completion_; }

 private:
  void settle(c10::intrusive_ptr<c10d::Work> gloo, std::exception_ptr error) {
    bool chain = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      gloo_ = std::move(gloo);
      error_ = std::move(error);
      settled_ = true;
      chain = future_ != nullptr;
    }
    settled_cv_.notify_all();
    if (chain) chainFuture();
  }
  // Called once, after settling (gloo_, error_ and future_ no longer change).
  void chainFuture() {
    if (error_) {
      future_->setError(error_);
      return;
    }
    gloo_->getFuture()->addCallback([future = future_, completion = completion_](c10::ivalue::Future& done) {
      if (done.hasError()) {
        future->setError(done.exception_ptr());
        return;
      }
      try {
        completion->run();
      } catch (...) {
        future->setError(std::current_exception());
        return;
      }
      future->markCompleted(c10::IValue(completion->results));
    });
  }

  std::mutex mutex_;
  std::condition_variable settled_cv_;
  bool settled_ = false;
  c10::intrusive_ptr<c10d::Work> gloo_;
  std::exception_ptr error_;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
  const std::shared_ptr<Completion> completion_;
};

// Waits for the collective here (on the host or in stream work) and puts the results in place.
bool waitHere(Issue& issue, std::chrono::milliseconds timeout) {
  const bool completed = issue.gloo()->wait(timeout);
  if (completed) issue.completion()->run();
  return completed;
}

// What a stream waiting for a collective holds.
struct PendingWait : Held {
  explicit PendingWait(std::shared_ptr<Issue> issue) : issue(std::move(issue)) {}
  std::shared_ptr<Issue> issue;
};

class FooWork final : public c10d::Work {
 public:
  FooWork(std::shared_ptr<Issue> issue, int rank, c10d::OpType op) : Work(rank, op), issue_(std::move(issue)) {}

  bool isCompleted() override { return issue_->isCompleted(); }
  bool isSuccess() const override { return issue_->isSuccess(); }
  std::exception_ptr exception() const override { return issue_->exception(); }
  int sourceRank() const override { return issue_->gloo()->sourceRank(); }
  std::vector<at::Tensor> result() override {
    issue_->gloo();
    return issue_->completion()->results;
  }
  void synchronize() override { wait(::kNoTimeout); }
  // As NCCL's: the current stream of the tensors' device waits for the collective, the host does not. Done (or
  // without foo tensors), it raises the collective's error (timeout, peer gone, disagreement) here. A receive from
  // any source waits here too: its caller asks for the source next.
  bool wait(std::chrono::milliseconds timeout) override {
    const c10::DeviceIndex device = issue_->completion()->device;
    if (device < 0 || retrieveOpType() == c10d::OpType::RECVANYSOURCE || issue_->isCompleted()) {
      return waitHere(*issue_, timeout);
    }
    std::shared_ptr<PendingWait> pending(new PendingWait(issue_), &releaseElsewhere);
    FOO_CHECK(foo_rt::launchAsync(currentRuntimeStream(device), [pending, timeout] {
      try {
        waitHere(*pending->issue, timeout);
      } catch (const c10::Error& e) {
        throw std::runtime_error(e.what_without_backtrace());
      }
    }));
    return true;
  }
  void abort() override { issue_->abort(); }
  uint64_t getSequencenumber() const override { return issue_->gloo()->getSequencenumber(); }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return issue_->future(); }

 private:
  std::shared_ptr<Issue> issue_;
};

template <class T, class F>
auto map(const std::vector<T>& items, F f) {
  std::vector<std::decay_t<decltype(f(items.front()))>> out;
  out.reserve(items.size());
  for (const T& item : items) out.push_back(f(item));
  return out;
}

// Turns the foo tensors of one collective into what Gloo takes, on the issuing thread, once the work queued before
// the call on their streams has run.
class Collective {
 public:
  explicit Collective(std::shared_ptr<Issue> issue) : issue_(std::move(issue)), completion_(issue_->completion()) {}

  // A tensor Gloo only reads.
  at::Tensor input(const at::Tensor& t) {
    at::Tensor alias = hostAliasUnordered(t);
    return alias.is_contiguous() ? alias : alias.contiguous();
  }
  // A tensor Gloo writes (and may read first): its current contents go in, the result comes back into it.
  at::Tensor output(const at::Tensor& t) {
    at::Tensor alias = hostAliasUnordered(t);
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
  Options reduceOptions(const Options& opts, int world_size, bool here_gets_result = true) {
    if (opts.reduceOp.op_ != c10d::ReduceOp::AVG) return opts;
    Options sum = opts;
    sum.reduceOp = c10d::ReduceOp(c10d::ReduceOp::SUM);
    if (here_gets_result) completion_->average_over = world_size;
    return sum;
  }

  // Gloo's work for the call besides the one the caller's work follows; lives as long as the caller's work.
  void keepAlive(c10::intrusive_ptr<c10d::Work> companion) { completion_->companions.push_back(std::move(companion)); }
  // For a call whose Gloo work starts later, elsewhere: the issue to settle then.
  std::shared_ptr<Issue> defer() {
    deferred_ = true;
    return issue_;
  }
  bool deferred() const { return deferred_; }

 private:
  std::shared_ptr<Issue> issue_;
  std::shared_ptr<Completion> completion_;
  bool deferred_ = false;
};

// The tensors of a call, checked at the call: the foo device they are on, and for each device, a point that its
// current stream reaches once the work queued before the call has run (the collective starts after it).
class CallSite {
 public:
  template <class... Args>
  explicit CallSite(const Args&... args) {
    (add(args), ...);
  }
  c10::DeviceIndex device() const { return device_; }
  std::vector<std::shared_future<void>> streamPoints() && { return std::move(points_); }

 private:
  void add(const at::Tensor& t) {
    checkHostAliasable(t);
    if (!t.defined() || t.device().type() != kFoo) return;
    const c10::DeviceIndex device = t.device().index();
    if (device_ < 0) device_ = device;
    for (c10::DeviceIndex seen : devices_) {
      if (seen == device) return;
    }
    devices_.push_back(device);
    auto reached = std::make_shared<std::promise<void>>();
    points_.push_back(reached->get_future().share());
    FOO_CHECK(foo_rt::launch(currentRuntimeStream(device), [reached] { reached->set_value(); }));
  }
  void add(const std::vector<at::Tensor>& ts) {
    for (const at::Tensor& t : ts) add(t);
  }
  void add(const std::vector<std::vector<at::Tensor>>& lists) {
    for (const std::vector<at::Tensor>& ts : lists) add(ts);
  }

  c10::DeviceIndex device_ = -1;
  c10::SmallVector<c10::DeviceIndex, 2> devices_;
  std::vector<std::shared_future<void>> points_;
};

const char* reduceOpName(int64_t op) {
  switch (op) {
    case c10d::ReduceOp::SUM: return "SUM";
    case c10d::ReduceOp::AVG: return "AVG";
    case c10d::ReduceOp::PRODUCT: return "PRODUCT";
    case c10d::ReduceOp::MIN: return "MIN";
    case c10d::ReduceOp::MAX: return "MAX";
    case c10d::ReduceOp::BAND: return "BAND";
    case c10d::ReduceOp::BOR: return "BOR";
    case c10d::ReduceOp::BXOR: return "BXOR";
    case c10d::ReduceOp::PREMUL_SUM: return "PREMUL_SUM";
    default: return "UNUSED";
  }
}

// What every rank must agree on for one collective, in the same number of words on every rank (the exchange needs
// equal sizes): the operation, root, reduction, number of tensors and a hash of their dtypes and shapes, the first
// tensor's dtype and shape (for the message), and for all_to_all the elements sent to and received from each rank.
class Signature {
 public:
  Signature(c10d::OpType op, int world_size) : world_size_(world_size), words_(kHeader + 2 * world_size, 0) {
    words_[kOp] = static_cast<int64_t>(op);
    words_[kRoot] = -1;
    words_[kReduceOp] = -1;
  }
  Signature& root(int64_t rank) {
    words_[kRoot] = rank;
    return *this;
  }
  // Also refuses AVG on tensors it cannot divide, at the call.
  Signature& reduction(const c10d::ReduceOp& op, const std::vector<at::Tensor>& tensors) {
    words_[kReduceOp] = static_cast<int64_t>(op.op_);
    if (op.op_ == c10d::ReduceOp::AVG) {
      for (const at::Tensor& t : tensors) {
        TORCH_CHECK(at::isFloatingType(t.scalar_type()) || at::isComplexType(t.scalar_type()),
                    "foo collectives: ReduceOp.AVG needs floating point or complex tensors, got ", t.scalar_type());
      }
    }
    return *this;
  }
  Signature& tensors(const std::vector<at::Tensor>& ts) {
    for (const at::Tensor& t : ts) add(t);
    return *this;
  }
  Signature& tensors(const std::vector<std::vector<at::Tensor>>& lists) {
    for (const std::vector<at::Tensor>& ts : lists) tensors(ts);
    return *this;
  }
  // all_to_all: ranks send different amounts, what rank r sends to s must be what s receives from r.
  Signature& exchanges(at::ScalarType dtype, const std::vector<int64_t>& sent, const std::vector<int64_t>& received) {
    words_[kDtype] = static_cast<int64_t>(dtype);
    for (size_t peer = 0; peer < sent.size() && peer < static_cast<size_t>(world_size_); ++peer) {
      words_[kHeader + peer] = sent[peer];
    }
    for (size_t peer = 0; peer < received.size() && peer < static_cast<size_t>(world_size_); ++peer) {
      words_[kHeader + world_size_ + peer] = received[peer];
    }
    return *this;
  }
  c10d::OpType op() const { return static_cast<c10d::OpType>(words_[kOp]); }
  const std::vector<int64_t>& words() const { return words_; }
  // The words as a CPU tensor, to send; and one to receive another rank's words into.
  at::Tensor tensor() const {
    at::Tensor t = at::empty({static_cast<int64_t>(words_.size())}, at::kLong);
    std::copy(words_.begin(), words_.end(), t.data_ptr<int64_t>());
    return t;
  }
  static at::Tensor receivingTensor(int world_size) {
    return at::empty({static_cast<int64_t>(kHeader) + 2 * world_size}, at::kLong);
  }
  static int64_t bytes(const int64_t* words) { return words[kBytes]; }
  int64_t bytes() const { return words_[kBytes]; }

  // Raises unless the message a sender described (`sent`) fits in the tensors described by `receiving`; a receiver
  // may take less than it has room for, as with Gloo.
  static void checkFits(const int64_t* sent, const Signature& receiving, int source, int tag) {
    TORCH_CHECK(sent[kBytes] <= receiving.words_[kBytes], "foo: a receive from rank ", source, " (tag ", tag,
                ") into ", describe(receiving.words_.data(), receiving.world_size_), " (", receiving.words_[kBytes],
                " bytes) got a larger message: ", describe(sent, receiving.world_size_), " (", sent[kBytes],
                " bytes); the message was received and dropped");
  }

  // Words in a signature.
  static size_t size(int world_size) { return kHeader + 2 * world_size; }
  // Raises, the same message on every rank, unless the signatures of all ranks agree (rank r's at
  // `first + r * rank_stride`).
  static void checkAgreement(const int64_t* first, size_t rank_stride, int world_size, int64_t collective) {
    auto of = [&](int rank) { return first + rank * rank_stride; };
    bool agree = true;
    for (int rank = 1; rank < world_size; ++rank) agree &= std::equal(of(rank), of(rank) + kHeader, of(0));
    for (int from = 0; from < world_size; ++from) {
      for (int to = 0; to < world_size; ++to) {
        agree &= of(from)[kHeader + to] == of(to)[kHeader + world_size + from];
      }
    }
    if (agree) return;
    std::ostringstream ranks;
    for (int rank = 0; rank < world_size; ++rank) {
      ranks << "; rank " << rank << " called " << describe(of(rank), world_size);
    }
    TORCH_CHECK(false, "foo collectives: the ranks disagree on collective #", collective, " of this process group",
                ranks.str(), ". Every rank must call the same collectives in the same order, on tensors of the same "
                "dtypes and shapes; this one exchanged no data on any rank");
  }

 private:
  enum Word : size_t { kOp, kRoot, kReduceOp, kCount, kHash, kBytes, kDtype, kDims, kSizes };
  static constexpr size_t kShownDims = 6;
  static constexpr size_t kHeader = kSizes + kShownDims;

  void add(const at::Tensor& t) {
    words_[kBytes] += static_cast<int64_t>(t.nbytes());
    if (words_[kCount]++ == 0) {
      words_[kDtype] = static_cast<int64_t>(t.scalar_type());
      words_[kDims] = t.dim();
      for (size_t d = 0; d < kShownDims && d < static_cast<size_t>(t.dim()); ++d) words_[kSizes + d] = t.size(d);
    }
    auto mix = [this](int64_t value) {  // unsigned: wraps instead of overflowing
      const uint64_t hash = static_cast<uint64_t>(words_[kHash]) * 1000003u + static_cast<uint64_t>(value);
      words_[kHash] = static_cast<int64_t>(hash);
    };
    mix(static_cast<int64_t>(t.scalar_type()));
    mix(t.dim());
    for (int64_t size : t.sizes()) mix(size);
  }

  static std::string describe(const int64_t* words, int world_size) {
    std::ostringstream out;
    out << c10d::opTypeToString(static_cast<c10d::OpType>(words[kOp]));
    if (words[kReduceOp] >= 0) out << " (" << reduceOpName(words[kReduceOp]) << ")";
    if (words[kRoot] >= 0) out << " with root " << words[kRoot];
    const auto op = static_cast<c10d::OpType>(words[kOp]);
    const auto dtype = static_cast<at::ScalarType>(words[kDtype]);
    if (op == c10d::OpType::ALLTOALL || op == c10d::OpType::ALLTOALL_BASE) {
      auto list = [&](const int64_t* counts) {
        std::ostringstream items;
        for (int peer = 0; peer < world_size; ++peer) items << (peer > 0 ? ", " : "") << counts[peer];
        return items.str();
      };
      out << " of " << dtype << " sending [" << list(words + kHeader) << "] and receiving ["
          << list(words + kHeader + world_size) << "] elements";
    } else if (words[kCount] > 0) {
      out << " on " << words[kCount] << (words[kCount] == 1 ? " tensor " : " tensors, the first ") << dtype << " [";
      for (int64_t d = 0; d < words[kDims]; ++d) {
        out << (d > 0 ? ", " : "");
        if (d == static_cast<int64_t>(kShownDims)) {
          out << "...";
          break;
        }
        out << words[kSizes + d];
      }
      out << "]";
    }
    return out.str();
  }

  int world_size_;
  std::vector<int64_t> words_;
};

// The ranks' agreement on the signatures of their collectives, in call order, over a Gloo group of its own. An
// exchange carries each rank's first signatures not yet settled (up to a batch); the first `fewest sent` of them are
// settled by it on every rank alike, so a burst of calls costs a few exchanges rather than one each. Used by the
// issuing thread only.
class Agreements {
 public:
  explicit Agreements(c10::intrusive_ptr<c10d::Backend> exchange)
      : exchange_(std::move(exchange)),
        world_size_(exchange_->getSize()),
        words_(Signature::size(world_size_)),
        batch_(std::clamp<size_t>(4096 / words_, 1, 16)) {}

  // The next collective's signature; returns its number.
  int64_t add(const Signature& signature) {
    pending_.push_back(signature.words());
    return ++added_;
  }
  // Starts an exchange of the pending signatures, unless one is running.
  void start() {
    if (running_ || pending_.empty()) return;
    const size_t count = std::min(batch_, pending_.size());
    at::Tensor local = at::zeros({static_cast<int64_t>(1 + batch_ * words_)}, at::kLong);
    int64_t* out = local.data_ptr<int64_t>();
    out[0] = static_cast<int64_t>(count);
    for (size_t i = 0; i < count; ++i) std::copy(pending_[i].begin(), pending_[i].end(), out + 1 + i * words_);
    Exchange exchange{at::empty({local.numel() * world_size_}, at::kLong), nullptr};
    exchange.work = exchange_->_allgather_base(exchange.gathered, local, c10d::AllgatherOptions());
    running_ = std::move(exchange);
  }
  // Waits until collective `number` is settled; raises if the ranks disagree on it (or the exchange failed).
  void check(int64_t number) {
    while (settled_ < number) {
      start();
      finish();
    }
    auto failure = failures_.find(number);
    if (failure != failures_.end()) {
      std::exception_ptr error = failure->second;
      failures_.erase(failure);
      std::rethrow_exception(error);
    }
  }

 private:
  struct Exchange {
    at::Tensor gathered;
    c10::intrusive_ptr<c10d::Work> work;
  };

  void finish() {
    running_->work->wait();  // a failed exchange stays running: every later collective raises its error too
    const int64_t* all = running_->gathered.data_ptr<int64_t>();
    const size_t rank_stride = 1 + batch_ * words_;
    int64_t settled_now = all[0];
    for (int rank = 1; rank < world_size_; ++rank) settled_now = std::min(settled_now, all[rank * rank_stride]);
    for (int64_t i = 0; i < settled_now; ++i) {
      const int64_t number = settled_ + 1 + i;
      try {
        Signature::checkAgreement(all + 1 + i * words_, rank_stride, world_size_, number);
      } catch (...) {
        failures_[number] = std::current_exception();
      }
      pending_.pop_front();
    }
    settled_ += settled_now;
    running_.reset();
  }

  c10::intrusive_ptr<c10d::Backend> exchange_;
  int world_size_;
  size_t words_;
  size_t batch_;
  std::deque<std::vector<int64_t>> pending_;  // signatures of collectives settled_ + 1, settled_ + 2, ...
  int64_t added_ = 0;
  int64_t settled_ = 0;
  std::optional<Exchange> running_;
  std::map<int64_t, std::exception_ptr> failures_;  // settled collectives the ranks disagreed on, until checked
};

using Start = std::function<c10::intrusive_ptr<c10d::Work>(Collective&)>;

// Something an OrderedThread runs.
struct Task : Held {
  // Called, in order, on every task queued when the thread takes the next one: the start of what may overlap the
  // tasks before it.
  virtual void prepare() {}
  virtual void run() = 0;
  bool prepared = false;  // touched by the ordered thread only
};

// Runs tasks one after the other, in the order they were pushed, on a thread of its own.
class OrderedThread {
 public:
  OrderedThread() : thread_([this] { loop(); }) {}
  ~OrderedThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();  // after the tasks already pushed
  }

  void push(std::unique_ptr<Task> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    changed_.notify_all();
  }
  // Waits until every task pushed so far has run.
  void drain() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
  }

 private:
  void loop() {
    std::vector<Task*> unprepared;
    for (;;) {
      std::unique_ptr<Task> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        busy_ = false;
        changed_.notify_all();
        changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
        // Queued tasks stay alive after the lock is released: only this thread pops them.
        unprepared.push_back(task.get());
        for (const std::unique_ptr<Task>& queued : queue_) unprepared.push_back(queued.get());
      }
      for (Task* next : unprepared) {
        if (!next->prepared) {
          next->prepared = true;
          next->prepare();
        }
      }
      unprepared.clear();
      task->run();
      releaseElsewhere(task.release());
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::unique_ptr<Task>> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the rest is initialized
};

// One call, as the issuing thread takes it: Gloo's work starts once the work queued before the call on the tensors'
// streams has run and the ranks agreed on what is called.
struct Job : Task {
  std::shared_ptr<Issue> issue;
  std::vector<std::shared_future<void>> stream_points;
  std::optional<Signature> signature;  // none for point-to-point
  Agreements* agreements = nullptr;
  int64_t number = 0;                  // in the agreements, once prepared
  Start start;

  void prepare() override {
    if (signature) number = agreements->add(*signature);
  }

  void run() override {
    try {
      if (signature) agreements->start();  // overlaps the wait for the streams
      for (const std::shared_future<void>& point : stream_points) point.wait();
      if (signature) agreements->check(number);
      Collective collective(issue);
      c10::intrusive_ptr<c10d::Work> gloo = start(collective);
      if (!collective.deferred()) issue->started(std::move(gloo));
    } catch (...) {
      issue->failed(std::current_exception());
    }
  }
};

// A receive waiting for its sender's header: receives the data once the header says it fits, else receives the
// message into a scratch buffer and fails (Gloo would abort the process on a message larger than the tensors).
struct PendingReceive : Task {
  std::shared_ptr<Issue> issue;
  c10::intrusive_ptr<c10d::Backend> gloo;
  c10::intrusive_ptr<c10d::Work> header;
  at::Tensor sent;                  // the sender's signature, once the header has come
  std::optional<Signature> receiving;
  std::vector<at::Tensor> staged;   // what Gloo writes
  int source;                       // -1: any
  int tag;

  void run() override {
    try {
      header->wait();
      const int from = source >= 0 ? source : header->sourceRank();
      const int64_t* words = sent.data_ptr<int64_t>();
      if (Signature::bytes(words) > receiving->bytes()) {
        std::vector<at::Tensor> scratch{at::empty({Signature::bytes(words)}, at::kByte)};
        gloo->recv(scratch, from, tag)->wait();
      }
      Signature::checkFits(words, *receiving, from, tag);
      issue->started(gloo->recv(staged, from, tag));
    } catch (...) {
      issue->failed(std::current_exception());
    }
  }
};

class FooBackend final : public c10d::Backend {
 public:
  FooBackend(c10::intrusive_ptr<c10d::Backend> gloo, c10::intrusive_ptr<c10d::Backend> signatures)
      : Backend(gloo->getRank(), gloo->getSize()),
        gloo_(std::move(gloo)),
        signatures_(std::move(signatures)),
        agreements_(signatures_) {}

  const std::string getBackendName() const override { return "foo"; }
  c10::intrusive_ptr<Options> getBackendOptions() override { return gloo_->getBackendOptions(); }
  void setTimeout(std::chrono::milliseconds timeout) override {
    gloo_->setTimeout(timeout);
    signatures_->setTimeout(timeout);
  }
  void setSequenceNumberForGroup() override { gloo_->setSequenceNumberForGroup(); }
  uint64_t getSequenceNumberForGroup() override { return gloo_->getSequenceNumberForGroup(); }
  void abort() override {
    signatures_->abort();
    gloo_->abort();
  }
  void shutdown() override {
    signatures_->shutdown();
    gloo_->shutdown();
  }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                          const c10d::BroadcastOptions& opts) override {
    checkPeer("root", opts.rootRank);
    return submit(signature(c10d::OpType::BROADCAST).root(opts.rootRank).tensors(tensors), CallSite(tensors),
                  [this, tensors, opts](Collective& c) {
                    auto staged = c.outputs(tensors);
                    return gloo_->broadcast(staged, opts);
                  });
  }

  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                          const c10d::AllreduceOptions& opts) override {
    return submit(signature(c10d::OpType::ALLREDUCE).reduction(opts.reduceOp, tensors).tensors(tensors),
                  CallSite(tensors), [this, tensors, opts](Collective& c) {
                    auto gloo_opts = c.reduceOptions(opts, size_);
                    auto staged = c.outputs(tensors);
                    return gloo_->allreduce(staged, gloo_opts);
                  });
  }

  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(std::vector<at::Tensor>& tensors,
                                                    const c10d::AllreduceCoalescedOptions& opts) override {
    return submit(signature(c10d::OpType::ALLREDUCE_COALESCED).reduction(opts.reduceOp, tensors).tensors(tensors),
                  CallSite(tensors), [this, tensors, opts](Collective& c) {
                    auto gloo_opts = c.reduceOptions(opts, size_);
                    auto staged = c.outputs(tensors);
                    return gloo_->allreduce_coalesced(staged, gloo_opts);
                  });
  }

  c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor>& tensors, const c10d::ReduceOptions& opts) override {
    checkPeer("root", opts.rootRank);
    return submit(
        signature(c10d::OpType::REDUCE).root(opts.rootRank).reduction(opts.reduceOp, tensors).tensors(tensors),
        CallSite(tensors), [this, tensors, opts](Collective& c) {
          auto gloo_opts = c.reduceOptions(opts, size_, /*here_gets_result=*/rank_ == opts.rootRank);
          auto staged = c.outputs(tensors);
          return gloo_->reduce(staged, gloo_opts);
        });
  }

  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                          std::vector<at::Tensor>& inputs,
                                          const c10d::AllgatherOptions& opts) override {
    return submit(signature(c10d::OpType::ALLGATHER).tensors(inputs), CallSite(inputs, outputs),
                  readsAndWrites(inputs, outputs, opts, &c10d::Backend::allgather));
  }

  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                const c10d::AllgatherOptions& opts) override {
    return submit(signature(c10d::OpType::_ALLGATHER_BASE).tensors({input}), CallSite(input, output),
                  [this, output, input, opts](Collective& c) {
                    at::Tensor staged_input = c.input(input);
                    at::Tensor staged_output = c.output(output);
                    return gloo_->_allgather_base(staged_output, staged_input, opts);
                  });
  }

  c10::intrusive_ptr<c10d::Work> allgather_coalesced(std::vector<std::vector<at::Tensor>>& outputs,
                                                    std::vector<at::Tensor>& inputs,
                                                    const c10d::AllgatherOptions& opts) override {
    return submit(signature(c10d::OpType::ALLGATHER_COALESCED).tensors(inputs), CallSite(inputs, outputs),
                  readsAndWrites(inputs, outputs, opts, &c10d::Backend::allgather_coalesced));
  }

  c10::intrusive_ptr<c10d::Work> allgather_into_tensor_coalesced(std::vector<at::Tensor>& outputs,
                                                                std::vector<at::Tensor>& inputs,
                                                                const c10d::AllgatherOptions& opts) override {
    return submit(signature(c10d::OpType::COALESCED).tensors(inputs), CallSite(inputs, outputs),
                  readsAndWrites(inputs, outputs, opts, &c10d::Backend::allgather_into_tensor_coalesced));
  }

  c10::intrusive_ptr<c10d::Work> gather(std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
                                       const c10d::GatherOptions& opts) override {
    checkPeer("root", opts.rootRank);
    return submit(signature(c10d::OpType::GATHER).root(opts.rootRank).tensors(inputs), CallSite(inputs, outputs),
                  readsAndWrites(inputs, outputs, opts, &c10d::Backend::gather));
  }

  c10::intrusive_ptr<c10d::Work> scatter(std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
                                        const c10d::ScatterOptions& opts) override {
    checkPeer("root", opts.rootRank);
    return submit(signature(c10d::OpType::SCATTER).root(opts.rootRank).tensors(outputs), CallSite(inputs, outputs),
                  readsAndWrites(inputs, outputs, opts, &c10d::Backend::scatter));
  }

  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor>& outputs,
                                               std::vector<std::vector<at::Tensor>>& inputs,
                                               const c10d::ReduceScatterOptions& opts) override {
    return submit(signature(c10d::OpType::REDUCE_SCATTER).reduction(opts.reduceOp, outputs).tensors(outputs),
                  CallSite(inputs, outputs), [this, outputs, inputs, opts](Collective& c) {
                    auto gloo_opts = c.reduceOptions(opts, size_);
                    auto staged_inputs = c.inputs(inputs);
                    auto staged_outputs = c.outputs(outputs);
                    return gloo_->reduce_scatter(staged_outputs, staged_inputs, gloo_opts);
                  });
  }

  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(at::Tensor& output, at::Tensor& input,
                                                     const c10d::ReduceScatterOptions& opts) override {
    return submit(
        signature(c10d::OpType::_REDUCE_SCATTER_BASE).reduction(opts.reduceOp, {output}).tensors({output}),
        CallSite(input, output), [this, output, input, opts](Collective& c) {
          auto gloo_opts = c.reduceOptions(opts, size_);
          at::Tensor staged_input = c.input(input);
          at::Tensor staged_output = c.output(output);
          return gloo_->_reduce_scatter_base(staged_output, staged_input, gloo_opts);
        });
  }

  c10::intrusive_ptr<c10d::Work> reduce_scatter_tensor_coalesced(std::vector<at::Tensor>& outputs,
                                                                std::vector<at::Tensor>& inputs,
                                                                const c10d::ReduceScatterOptions& opts) override {
    return submit(
        signature(c10d::OpType::COALESCED).reduction(opts.reduceOp, outputs).tensors(outputs),
        CallSite(inputs, outputs), [this, outputs, inputs, opts](Collective& c) {
          auto gloo_opts = c.reduceOptions(opts, size_);
          auto staged_inputs = c.inputs(inputs);
          auto staged_outputs = c.outputs(outputs);
          return gloo_->reduce_scatter_tensor_coalesced(staged_outputs, staged_inputs, gloo_opts);
        });
  }

  c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor& output, at::Tensor& input,
                                              std::vector<int64_t>& output_split_sizes,
                                              std::vector<int64_t>& input_split_sizes,
                                              const c10d::AllToAllOptions& opts) override {
    Signature agreed = signature(c10d::OpType::ALLTOALL_BASE)
                           .exchanges(input.scalar_type(), splitElements(input, input_split_sizes),
                                      splitElements(output, output_split_sizes));
    return submit(std::move(agreed), CallSite(input, output),
                  [this, output, input, output_split_sizes, input_split_sizes, opts](Collective& c) mutable {
                    at::Tensor staged_input = c.input(input);
                    at::Tensor staged_output = c.output(output);
                    return gloo_->alltoall_base(staged_output, staged_input, output_split_sizes, input_split_sizes,
                                                opts);
                  });
  }

  c10::intrusive_ptr<c10d::Work> alltoall(std::vector<at::Tensor>& outputs, std::vector<at::Tensor>& inputs,
                                         const c10d::AllToAllOptions& opts) override {
    auto numels = [](const std::vector<at::Tensor>& ts) {
      return map(ts, [](const at::Tensor& t) { return t.numel(); });
    };
    const at::ScalarType dtype = inputs.empty() ? at::kFloat : inputs.front().scalar_type();
    return submit(signature(c10d::OpType::ALLTOALL).exchanges(dtype, numels(inputs), numels(outputs)),
                  CallSite(inputs, outputs), readsAndWrites(inputs, outputs, opts, &c10d::Backend::alltoall));
  }

  // A send puts its signature (a header) on the signatures' group first: the receiver checks that the data fits.
  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dst_rank, int tag) override {
    checkPeer("destination", dst_rank);
    return submitPointToPoint(c10d::OpType::SEND, CallSite(tensors), [this, tensors, dst_rank, tag](Collective& c) {
      std::vector<at::Tensor> header{Signature(c10d::OpType::SEND, size_).tensors(tensors).tensor()};
      c.keepAlive(signatures_->send(header, dst_rank, tag));
      auto staged = c.inputs(tensors);
      return gloo_->send(staged, dst_rank, tag);
    });
  }

  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int src_rank, int tag) override {
    checkPeer("source", src_rank);
    return submitPointToPoint(c10d::OpType::RECV, CallSite(tensors), receive(tensors, src_rank, tag));
  }

  c10::intrusive_ptr<c10d::Work> recvAnysource(std::vector<at::Tensor>& tensors, int tag) override {
    return submitPointToPoint(c10d::OpType::RECVANYSOURCE, CallSite(tensors), receive(tensors, -1, tag));
  }

  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts) override {
    return submit(signature(c10d::OpType::BARRIER), CallSite(), [this, opts](Collective&) {
      return gloo_->barrier(opts);
    });
  }

  void monitoredBarrier(const c10d::BarrierOptions& opts, bool wait_all_ranks) override {
    issuer_.drain();  // Gloo's tags: nothing may be issued meanwhile
    gloo_->monitoredBarrier(opts, wait_all_ranks);
  }

 private:
  Signature signature(c10d::OpType op) const { return Signature(op, size_); }

  // The usual start: Gloo's `method` reads (copies of) `inputs` and writes `outputs`.
  template <class Inputs, class Outputs, class Options, class Method>
  Start readsAndWrites(const Inputs& inputs, const Outputs& outputs, const Options& opts, Method method) {
    return [this, inputs, outputs, opts, method](Collective& c) {
      auto staged_inputs = c.inputs(inputs);
      auto staged_outputs = c.outputs(outputs);
      return ((*gloo_).*method)(staged_outputs, staged_inputs, opts);
    };
  }

  // Receives the sender's header, then (on the receiving thread, so that a receive waiting for its sender holds up
  // no other call) the data.
  Start receive(const std::vector<at::Tensor>& tensors, int source, int tag) {
    return [this, tensors, source, tag](Collective& c) -> c10::intrusive_ptr<c10d::Work> {
      auto pending = std::make_unique<PendingReceive>();
      pending->sent = Signature::receivingTensor(size_);
      std::vector<at::Tensor> header{pending->sent};
      pending->header = source >= 0 ? signatures_->recv(header, source, tag) : signatures_->recvAnysource(header, tag);
      pending->receiving.emplace(Signature(c10d::OpType::RECV, size_).tensors(tensors));
      pending->staged = c.outputs(tensors);
      pending->gloo = gloo_;
      pending->source = source;
      pending->tag = tag;
      pending->issue = c.defer();
      receiver_.push(std::move(pending));
      return nullptr;
    };
  }

  // Starts the exchange of the signature and queues the call for the issuing thread; the caller's work tracks it.
  c10::intrusive_ptr<c10d::Work> submit(const Signature& signature, CallSite&& site, Start start) {
    auto job = makeJob(std::move(site), std::move(start));
    job->signature.emplace(signature);
    job->agreements = &agreements_;
    return enqueue(std::move(job), signature.op());
  }
  // Point-to-point calls exchange no signature: only two ranks take part.
  c10::intrusive_ptr<c10d::Work> submitPointToPoint(c10d::OpType op, CallSite&& site, Start start) {
    return enqueue(makeJob(std::move(site), std::move(start)), op);
  }
  static std::unique_ptr<Job> makeJob(CallSite&& site, Start start) {
    auto completion = std::make_shared<Completion>();
    completion->device = site.device();
    auto job = std::make_unique<Job>();
    job->issue = std::make_shared<Issue>(std::move(completion));
    job->stream_points = std::move(site).streamPoints();
    job->start = std::move(start);
    return job;
  }
  c10::intrusive_ptr<c10d::Work> enqueue(std::unique_ptr<Job> job, c10d::OpType op) {
    auto work = c10::make_intrusive<FooWork>(job->issue, rank_, op);
    issuer_.push(std::move(job));
    return work;
  }

  // Elements of `t` going to (or coming from) each rank in an all_to_all along dim 0: equal parts without splits.
  std::vector<int64_t> splitElements(const at::Tensor& t, const std::vector<int64_t>& split_sizes) const {
    const int64_t row = t.dim() == 0 ? 1 : c10::multiply_integers(t.sizes().slice(1));
    if (split_sizes.empty()) return std::vector<int64_t>(size_, t.numel() / size_);
    return map(split_sizes, [row](int64_t rows) { return rows * row; });
  }

  // Gloo connects to a peer lazily and, for a rank that does not exist, waits out the whole timeout on the store
  // before it fails (on CPU tensors too); say so at once.
  void checkPeer(const char* role, int peer) const {
    TORCH_CHECK_VALUE(peer >= 0 && peer < size_, "foo: ", role, " rank ", peer,
                      " is not in the process group (ranks 0 to ", size_ - 1, ")");
  }

  c10::intrusive_ptr<c10d::Backend> gloo_;
  c10::intrusive_ptr<c10d::Backend> signatures_;  // a Gloo group of its own for the signatures
  Agreements agreements_;  // used by the issuing thread only
  // Destroyed first (issuer, then receiver), after running what was pushed.
  OrderedThread receiver_;  // receives waiting for their sender's header
  OrderedThread issuer_;    // starts Gloo's work for each call in call order (Gloo's tags follow it)
};

// Adds the foo backend, over the Gloo backends `holder` and `signatures` have for the CPU (one for the data, one for
// the ranks' agreement on each collective), to `holder` for PrivateUse1.
void attachBackend(const c10::intrusive_ptr<c10d::ProcessGroup>& holder,
                   const c10::intrusive_ptr<c10d::ProcessGroup>& signatures) {
  auto glooOf = [](const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
    c10::intrusive_ptr<c10d::Backend> gloo;
    try {
      gloo = group->getBackend(c10::kCPU);
    } catch (const c10::Error&) {
      TORCH_CHECK(false, "attach_backend: the process group has no CPU backend");
    }
    TORCH_CHECK(gloo->getBackendName() == "gloo", "attach_backend: the CPU backend must be Gloo, got ",
                gloo->getBackendName());
    return gloo;
  };
  holder->setBackend(kFoo, c10d::ProcessGroup::BackendType::CUSTOM,
                     c10::make_intrusive<FooBackend>(glooOf(holder), glooOf(signatures)));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("attach_backend(__torch__.torch.classes.c10d.ProcessGroup holder, "
        "__torch__.torch.classes.c10d.ProcessGroup signatures) -> ()",
        &attachBackend);
}

}  // namespace torch_foo
