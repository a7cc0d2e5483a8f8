// typevisor's native boundary for the kvm engine: thin wrappers over the Linux
// syscalls the engine needs (open/close/ioctl/mmap/munmap, thread ids, a kick
// signal) and one helper thread that watches libuv's backend fd so the vCPU
// running on the JS thread can be kicked out of KVM_RUN when the event loop has
// work. Every KVM structure, constant and decision lives in TypeScript.

#include <napi.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

// ---- errors ---------------------------------------------------------------

Napi::Value ThrowErrno(Napi::Env env, const char* syscall, int err) {
  std::string msg = std::string(syscall) + ": " + strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, uv_err_name(-err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

bool ArgBytes(const Napi::Value& v, uint8_t** data, size_t* len) {
  if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    *data = static_cast<uint8_t*>(ab.Data());
    *len = ab.ByteLength();
    return true;
  }
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    *data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    *len = ta.ByteLength();
    return true;
  }
  if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    *data = static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    *len = dv.ByteLength();
    return true;
  }
  return false;
}

// ---- plain syscalls -------------------------------------------------------

Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int flags = info[1].As<Napi::Number>().Int32Value();
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(info.Env(), "open", errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (close(fd) < 0) return ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

// ioctl(fd, request, integerArgument) -> result; throws on failure.
Napi::Value IoctlInt(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long req = info[1].As<Napi::Number>().Uint32Value();
  unsigned long arg = static_cast<unsigned long>(info[2].As<Napi::Number>().Int64Value());
  int r = ioctl(fd, req, arg);
  if (r < 0) return ThrowErrno(info.Env(), "ioctl", errno);
  return Napi::Number::New(info.Env(), r);
}

// ioctl(fd, request, bytes) with a pointer to the bytes; throws on failure.
Napi::Value IoctlBytes(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long req = info[1].As<Napi::Number>().Uint32Value();
  uint8_t* data;
  size_t len;
  if (!ArgBytes(info[2], &data, &len)) {
    Napi::TypeError::New(info.Env(), "ioctlBytes: expected an ArrayBuffer or view").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  int r = ioctl(fd, req, data);
  if (r < 0) return ThrowErrno(info.Env(), "ioctl", errno);
  return Napi::Number::New(info.Env(), r);
}

// The hot call: ioctl(vcpuFd, KVM_RUN, 0). Returns 0 or -errno; never throws.
constexpr unsigned long kKvmRun = 0xAE80;
Napi::Value Run(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int r = ioctl(fd, kKvmRun, 0);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : r);
}

// mmap(length, prot, flags, fd, offset) -> external ArrayBuffer over the mapping.
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  size_t length = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  int prot = info[1].As<Napi::Number>().Int32Value();
  int flags = info[2].As<Napi::Number>().Int32Value();
  int fd = info[3].As<Napi::Number>().Int32Value();
  off_t offset = static_cast<off_t>(info[4].As<Napi::Number>().Int64Value());
  void* p = mmap(nullptr, length, prot, flags, fd, offset);
  if (p == MAP_FAILED) return ThrowErrno(info.Env(), "mmap", errno);
  // No finalizer: the owner unmaps explicitly with munmap(), which detaches
  // the buffer first so JavaScript can never touch an unmapped page.
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), p, length);
  if (info.Env().IsExceptionPending()) {
    munmap(p, length);
    return info.Env().Undefined();
  }
  return ab;
}

// mmapPieces(pieceSizes[], prot, flags): one anonymous mapping of the summed
// size, returned as consecutive ArrayBuffers that tile it (each must be at most
// what an ArrayBuffer may hold). Unmapping every piece unmaps the whole.
Napi::Value MmapPieces(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto sizes = info[0].As<Napi::Array>();
  int prot = info[1].As<Napi::Number>().Int32Value();
  int flags = info[2].As<Napi::Number>().Int32Value();
  size_t total = 0;
  for (uint32_t i = 0; i < sizes.Length(); i++) total += static_cast<size_t>(sizes.Get(i).As<Napi::Number>().Int64Value());
  void* p = mmap(nullptr, total, prot, flags, -1, 0);
  if (p == MAP_FAILED) return ThrowErrno(env, "mmap", errno);
  Napi::Array out = Napi::Array::New(env, sizes.Length());
  size_t at = 0;
  for (uint32_t i = 0; i < sizes.Length(); i++) {
    size_t len = static_cast<size_t>(sizes.Get(i).As<Napi::Number>().Int64Value());
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, static_cast<uint8_t*>(p) + at, len);
    if (env.IsExceptionPending()) {
      for (uint32_t j = 0; j < i; j++) out.Get(j).As<Napi::ArrayBuffer>().Detach();
      munmap(p, total);
      return env.Undefined();
    }
    out.Set(i, ab);
    at += len;
  }
  return out;
}

Napi::Value Munmap(const Napi::CallbackInfo& info) {
  auto ab = info[0].As<Napi::ArrayBuffer>();
  void* p = ab.Data();
  size_t len = ab.ByteLength();
  if (p == nullptr || len == 0) return info.Env().Undefined();
  ab.Detach();
  if (munmap(p, len) < 0) return ThrowErrno(info.Env(), "munmap", errno);
  return info.Env().Undefined();
}

// The host virtual address of an ArrayBuffer's bytes (for KVM_SET_USER_MEMORY_REGION).
Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  auto ab = info[0].As<Napi::ArrayBuffer>();
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ab.Data())));
}

Napi::Value GetTid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(syscall(SYS_gettid)));
}

// ---- kicking vCPU threads out of KVM_RUN -----------------------------------
//
// A kick sets kvm_run.immediate_exit (so a thread about to enter KVM_RUN returns
// EINTR at once) and then sends the kick signal to the thread (so a thread
// inside KVM_RUN leaves it with EINTR). The signal handler does nothing.

constexpr int kMaxSlots = 256;
struct KickSlot {
  std::atomic<pid_t> tid{0};
  std::atomic<uint8_t*> run{nullptr};
};
KickSlot g_slots[kMaxSlots];
std::atomic<bool> g_signalInstalled{false};

int KickSignal() { return SIGRTMIN + 5; }

void NoopHandler(int) {}

void InstallKickSignal() {
  bool expected = false;
  if (!g_signalInstalled.compare_exchange_strong(expected, true)) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = NoopHandler;
  sa.sa_flags = SA_RESTART;  // other syscalls restart; KVM_RUN still returns EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(KickSignal(), &sa, nullptr);
}

void KickSlotNow(int slot) {
  if (slot < 0 || slot >= kMaxSlots) return;
  uint8_t* run = g_slots[slot].run.load();
  if (run != nullptr) __atomic_store_n(&run[1], 1, __ATOMIC_SEQ_CST);
  pid_t tid = g_slots[slot].tid.load();
  if (tid != 0) syscall(SYS_tgkill, getpid(), tid, KickSignal());
}

// registerVcpuThread(slot, kvmRunBuffer): the calling thread runs that vCPU.
Napi::Value RegisterVcpuThread(const Napi::CallbackInfo& info) {
  int slot = info[0].As<Napi::Number>().Int32Value();
  if (slot < 0 || slot >= kMaxSlots) {
    Napi::RangeError::New(info.Env(), "registerVcpuThread: slot out of range").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  InstallKickSignal();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, KickSignal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  auto ab = info[1].As<Napi::ArrayBuffer>();
  g_slots[slot].run.store(static_cast<uint8_t*>(ab.Data()));
  g_slots[slot].tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
  return info.Env().Undefined();
}

Napi::Value UnregisterVcpuThread(const Napi::CallbackInfo& info) {
  int slot = info[0].As<Napi::Number>().Int32Value();
  if (slot >= 0 && slot < kMaxSlots) {
    g_slots[slot].tid.store(0);
    g_slots[slot].run.store(nullptr);
  }
  return info.Env().Undefined();
}

Napi::Value Kick(const Napi::CallbackInfo& info) {
  KickSlotNow(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// Allocates `count` consecutive free kick slots; returns the first, or -1.
std::atomic<int> g_slotOwner[kMaxSlots];
Napi::Value AllocSlots(const Napi::CallbackInfo& info) {
  int count = info[0].As<Napi::Number>().Int32Value();
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&mu);
  int found = -1;
  for (int start = 0; start + count <= kMaxSlots && found < 0; start++) {
    bool free = true;
    for (int i = start; i < start + count; i++) free = free && g_slotOwner[i].load() == 0;
    if (free) found = start;
  }
  if (found >= 0)
    for (int i = found; i < found + count; i++) g_slotOwner[i].store(1);
  pthread_mutex_unlock(&mu);
  return Napi::Number::New(info.Env(), found);
}

Napi::Value FreeSlots(const Napi::CallbackInfo& info) {
  int first = info[0].As<Napi::Number>().Int32Value();
  int count = info[1].As<Napi::Number>().Int32Value();
  for (int i = first; i >= 0 && i < first + count && i < kMaxSlots; i++) {
    g_slots[i].tid.store(0);
    g_slots[i].run.store(nullptr);
    g_slotOwner[i].store(0);
  }
  return info.Env().Undefined();
}

// ---- the event-loop watcher ------------------------------------------------
//
// One thread per watcher. While armed it polls libuv's backend (epoll) fd with
// the loop's next timer timeout; when the loop has an event or a timer is due
// it records that it fired and kicks the armed slot. Arming and disarming are
// done by the JS thread that owns the loop, so libuv's state is read only there.
//
// The watcher also polls up to kMaxSliceEventfds eventfds of its own (ioeventfds
// registered with watcherAddEventfd, never in libuv's epoll set). When one is
// signalled it drains it, sets its bit in `signalled` and kicks the slot WITHOUT
// ending the slice: the machine thread takes the bits on EINTR
// (watcherTakeSignalled), runs the handlers and re-enters KVM_RUN.

constexpr int kMaxSliceEventfds = 32;

struct Watcher {
  pthread_t thread;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  int wakeFd = -1;
  bool armed = false;
  bool quit = false;
  unsigned gen = 0;
  int backendFd = -1;
  int timeoutMs = -1;
  int slot = -1;
  std::atomic<int> fired{0};
  int eventfds[kMaxSliceEventfds];  // -1 when free; guarded by mu
  std::atomic<uint32_t> signalled{0};
};

void* WatcherMain(void* arg) {
  auto* w = static_cast<Watcher*>(arg);
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->armed && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
    if (w->quit) break;
    unsigned gen = w->gen;
    struct pollfd fds[2 + kMaxSliceEventfds];
    int index[2 + kMaxSliceEventfds];
    fds[0] = {w->backendFd, POLLIN, 0};
    fds[1] = {w->wakeFd, POLLIN, 0};
    nfds_t n = 2;
    for (int i = 0; i < kMaxSliceEventfds; i++) {
      if (w->eventfds[i] < 0) continue;
      index[n] = i;
      fds[n++] = {w->eventfds[i], POLLIN, 0};
    }
    int timeout = w->timeoutMs;
    pthread_mutex_unlock(&w->mu);
    int r = poll(fds, n, timeout);
    if (r > 0 && (fds[1].revents & POLLIN)) {
      uint64_t v;
      ssize_t ignored = read(w->wakeFd, &v, sizeof v);
      (void)ignored;
    }
    pthread_mutex_lock(&w->mu);
    if (w->quit) break;
    // Drain signalled eventfds still registered (checked under mu: a removed fd may already be closed and reused).
    uint32_t bits = 0;
    for (nfds_t k = 2; r > 0 && k < n; k++) {
      if ((fds[k].revents & POLLIN) == 0 || w->eventfds[index[k]] != fds[k].fd) continue;
      uint64_t count;
      while (read(fds[k].fd, &count, sizeof count) == sizeof count) {
      }
      bits |= 1u << index[k];
    }
    if (bits != 0) w->signalled.fetch_or(bits);
    if (!w->armed || w->gen != gen) continue;  // disarmed or re-armed meanwhile: the next slice takes the bits
    bool due = (r == 0) || (r > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)));
    if (!due) {
      if (bits != 0) KickSlotNow(w->slot);  // handle the notify inside the slice
      continue;
    }
    w->armed = false;
    w->fired.store(1);
    KickSlotNow(w->slot);
  }
  pthread_mutex_unlock(&w->mu);
  return nullptr;
}

Napi::Value WatcherCreate(const Napi::CallbackInfo& info) {
  auto* w = new Watcher();
  for (int& fd : w->eventfds) fd = -1;
  w->wakeFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->wakeFd < 0) {
    int err = errno;
    delete w;
    return ThrowErrno(info.Env(), "eventfd", err);
  }
  int rc = pthread_create(&w->thread, nullptr, WatcherMain, w);
  if (rc != 0) {
    close(w->wakeFd);
    delete w;
    return ThrowErrno(info.Env(), "pthread_create", rc);
  }
  return Napi::External<Watcher>::New(info.Env(), w);
}

void WakeWatcher(Watcher* w) {
  uint64_t one = 1;
  ssize_t ignored = write(w->wakeFd, &one, sizeof one);
  (void)ignored;
}

// watcherArm(watcher, slot, maxMs): watch this thread's loop; kick `slot` when
// its backend fd has events, when its next timer is due, or after maxMs (-1: no
// cap). Returns the timeout used, in ms.
Napi::Value WatcherArm(const Napi::CallbackInfo& info) {
  auto* w = info[0].As<Napi::External<Watcher>>().Data();
  int slot = info[1].As<Napi::Number>().Int32Value();
  int maxMs = info[2].As<Napi::Number>().Int32Value();
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(info.Env(), &loop);
  uv_update_time(loop);
  // uv_backend_timeout() is 0 not only when work is due but also while Node's
  // setImmediate idle handle is still started, which is always the case when a
  // slice begins from an awaited setImmediate. So only a positive value (the
  // next timer) is trusted; otherwise the slice is bounded by maxMs, and I/O
  // readiness is seen directly on the backend fd.
  int t = uv_backend_timeout(loop);
  int timeout = t > 0 && (maxMs < 0 || t < maxMs) ? t : maxMs;
  w->fired.store(0);
  pthread_mutex_lock(&w->mu);
  w->backendFd = uv_backend_fd(loop);
  w->timeoutMs = timeout;
  w->slot = slot;
  w->armed = true;
  w->gen++;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return Napi::Number::New(info.Env(), timeout);
}

Napi::Value WatcherDisarm(const Napi::CallbackInfo& info) {
  auto* w = info[0].As<Napi::External<Watcher>>().Data();
  pthread_mutex_lock(&w->mu);
  bool wasArmed = w->armed;
  w->armed = false;
  pthread_mutex_unlock(&w->mu);
  if (wasArmed) WakeWatcher(w);
  return info.Env().Undefined();
}

// watcherAddEventfd(watcher, fd) -> index 0..31, or -1 when all are taken.
Napi::Value WatcherAddEventfd(const Napi::CallbackInfo& info) {
  auto* w = info[0].As<Napi::External<Watcher>>().Data();
  int fd = info[1].As<Napi::Number>().Int32Value();
  int found = -1;
  pthread_mutex_lock(&w->mu);
  for (int i = 0; i < kMaxSliceEventfds && found < 0; i++) {
    if (w->eventfds[i] < 0) {
      w->eventfds[i] = fd;
      found = i;
    }
  }
  pthread_mutex_unlock(&w->mu);
  if (found >= 0) WakeWatcher(w);  // re-poll with the new set
  return Napi::Number::New(info.Env(), found);
}

// watcherRemoveEventfd(watcher, index): after it returns the watcher never reads that fd again.
Napi::Value WatcherRemoveEventfd(const Napi::CallbackInfo& info) {
  auto* w = info[0].As<Napi::External<Watcher>>().Data();
  int i = info[1].As<Napi::Number>().Int32Value();
  if (i < 0 || i >= kMaxSliceEventfds) return info.Env().Undefined();
  pthread_mutex_lock(&w->mu);
  w->eventfds[i] = -1;
  pthread_mutex_unlock(&w->mu);
  w->signalled.fetch_and(~(1u << i));
  WakeWatcher(w);
  return info.Env().Undefined();
}

// Returns the bits of the eventfds signalled since the last call, and clears them.
Napi::Value WatcherTakeSignalled(const Napi::CallbackInfo& info) {
  auto* w = info[0].As<Napi::External<Watcher>>().Data();
  return Napi::Number::New(info.Env(), w->signalled.exchange(0));
}

// Returns whether the watcher fired since it was last armed, and clears it.
Napi::Value WatcherTakeFired(const Napi::CallbackInfo& info) {
  auto* w = info[0].As<Napi::External<Watcher>>().Data();
  return Napi::Boolean::New(info.Env(), w->fired.exchange(0) != 0);
}

// Stops and joins the watcher thread and frees it. Call once.
Napi::Value WatcherDestroy(const Napi::CallbackInfo& info) {
  auto* w = info[0].As<Napi::External<Watcher>>().Data();
  pthread_mutex_lock(&w->mu);
  w->quit = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  WakeWatcher(w);
  pthread_join(w->thread, nullptr);
  close(w->wakeFd);
  delete w;
  return info.Env().Undefined();
}

// ---- eventfds for the virtio fast path (KVM_IOEVENTFD / KVM_IRQFD) ----------
//
// eventfdCreate() -> fd; eventfdSignal(fd) adds 1 (fires an irqfd). pollEventfd(fd, cb)
// watches an eventfd with a uv_poll_t on the calling thread's event loop: when
// the kernel signals it (a guest notify write matched by KVM_IOEVENTFD), the
// counter is drained and cb() runs on that thread. The handle is unref'd so it
// never keeps the process alive by itself. Because the fd joins libuv's epoll
// set, the run-model watcher sees it and kicks vCPU 0 out of its slice.

Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return ThrowErrno(info.Env(), "eventfd", errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value EventfdSignal(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint64_t one = 1;
  ssize_t r = write(fd, &one, sizeof one);
  if (r < 0 && errno != EAGAIN) return ThrowErrno(info.Env(), "write", errno);
  return info.Env().Undefined();
}

struct EventPoll {
  uv_poll_t poll;
  int fd;
  // true for pollEventfd (drain the counter before the callback), false for pollFd.
  bool drain;
  napi_env env;
  Napi::FunctionReference callback;
  Napi::AsyncContext* context;
};

void OnEventfdReadable(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<EventPoll*>(handle->data);
  if (p->drain) {
    uint64_t count;
    while (read(p->fd, &count, sizeof count) == sizeof count) {
    }
    if (status < 0 || (events & UV_READABLE) == 0) return;
  }
  Napi::Env env(p->env);
  Napi::HandleScope scope(env);
  int reported = status < 0 ? -1 : events;
  p->callback.MakeCallback(env.Global(), {Napi::Number::New(env, reported)}, *p->context);
}

Napi::Value PollEventfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  auto* p = new EventPoll();
  p->fd = fd;
  p->drain = true;
  p->env = env;
  p->callback = Napi::Persistent(info[1].As<Napi::Function>());
  p->context = new Napi::AsyncContext(env, "typevisor:eventfd");
  p->poll.data = p;
  int rc = uv_poll_init(loop, &p->poll, fd);
  if (rc == 0) rc = uv_poll_start(&p->poll, UV_READABLE, OnEventfdReadable);
  if (rc != 0) {
    delete p->context;
    delete p;
    Napi::Error::New(env, std::string("uv_poll: ") + uv_strerror(rc)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&p->poll));
  return Napi::External<EventPoll>::New(env, p);
}

// pollFd(fd, events, cb) watches any non-blocking fd (a tap) for UV_READABLE (1)
// / UV_WRITABLE (2) without touching it: cb(events) runs on this thread's loop
// (events -1 on a poll error) and the caller does the read or write itself.
// pollFdUpdate(handle, events) changes the mask; 0 pauses the watch (used for
// backpressure: no guest buffers, stop reading). Unref'd; pollClose ends it.
Napi::Value PollFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int events = info[1].As<Napi::Number>().Int32Value() & (UV_READABLE | UV_WRITABLE);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  auto* p = new EventPoll();
  p->fd = fd;
  p->drain = false;
  p->env = env;
  p->callback = Napi::Persistent(info[2].As<Napi::Function>());
  p->context = new Napi::AsyncContext(env, "typevisor:pollfd");
  p->poll.data = p;
  int rc = uv_poll_init(loop, &p->poll, fd);
  if (rc != 0) {
    delete p->context;
    delete p;
    Napi::Error::New(env, std::string("uv_poll: ") + uv_strerror(rc)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (events != 0) rc = uv_poll_start(&p->poll, events, OnEventfdReadable);
  uv_unref(reinterpret_cast<uv_handle_t*>(&p->poll));
  if (rc != 0) {
    Napi::Error::New(env, std::string("uv_poll_start: ") + uv_strerror(rc)).ThrowAsJavaScriptException();
  }
  return Napi::External<EventPoll>::New(env, p);
}

Napi::Value PollFdUpdate(const Napi::CallbackInfo& info) {
  auto* p = info[0].As<Napi::External<EventPoll>>().Data();
  int events = info[1].As<Napi::Number>().Int32Value() & (UV_READABLE | UV_WRITABLE);
  int rc = events == 0 ? uv_poll_stop(&p->poll) : uv_poll_start(&p->poll, events, OnEventfdReadable);
  if (rc != 0) {
    Napi::Error::New(info.Env(), std::string("uv_poll_start: ") + uv_strerror(rc)).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

// Stops watching; the caller closes the fd afterwards.
Napi::Value PollClose(const Napi::CallbackInfo& info) {
  auto* p = info[0].As<Napi::External<EventPoll>>().Data();
  uv_poll_stop(&p->poll);
  p->callback.Reset();
  delete p->context;
  p->context = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), [](uv_handle_t* h) { delete static_cast<EventPoll*>(h->data); });
  return info.Env().Undefined();
}

// ---- fallocate on the thread pool -------------------------------------------

// fallocateAsync(fd, mode, offset, length) → Promise<0 | -errno>: fallocate(2)
// on libuv's thread pool (punching a hole in a large range can take a while, and
// the machine thread must not wait for it). Used by virtio-blk for DISCARD and
// WRITE_ZEROES with UNMAP (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE). The
// caller keeps the fd open until the promise settles.
class FallocateWorker : public Napi::AsyncWorker {
 public:
  FallocateWorker(Napi::Env env, int fd, int mode, off_t offset, off_t length)
      : Napi::AsyncWorker(env, "typevisor:fallocate"), deferred_(Napi::Promise::Deferred::New(env)),
        fd_(fd), mode_(mode), offset_(offset), length_(length) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    int rc;
    do {
      rc = fallocate(fd_, mode_, offset_, length_);
    } while (rc < 0 && errno == EINTR);
    result_ = rc < 0 ? -errno : 0;
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), result_)); }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  int mode_;
  off_t offset_;
  off_t length_;
  int result_ = 0;
};

Napi::Value FallocateAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int mode = info[1].As<Napi::Number>().Int32Value();
  double offset = info[2].As<Napi::Number>().DoubleValue();
  double length = info[3].As<Napi::Number>().DoubleValue();
  if (!(offset >= 0 && length > 0 && offset <= 9007199254740991.0 && length <= 9007199254740991.0)) {
    Napi::RangeError::New(env, "fallocateAsync: offset and length must be non-negative safe integers, length > 0").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new FallocateWorker(env, fd, mode, static_cast<off_t>(offset), static_cast<off_t>(length));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("ioctlInt", Napi::Function::New(env, IoctlInt));
  exports.Set("ioctlBytes", Napi::Function::New(env, IoctlBytes));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("mmap", Napi::Function::New(env, Mmap));
  exports.Set("mmapPieces", Napi::Function::New(env, MmapPieces));
  exports.Set("munmap", Napi::Function::New(env, Munmap));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf));
  exports.Set("gettid", Napi::Function::New(env, GetTid));
  exports.Set("allocSlots", Napi::Function::New(env, AllocSlots));
  exports.Set("freeSlots", Napi::Function::New(env, FreeSlots));
  exports.Set("registerVcpuThread", Napi::Function::New(env, RegisterVcpuThread));
  exports.Set("unregisterVcpuThread", Napi::Function::New(env, UnregisterVcpuThread));
  exports.Set("kick", Napi::Function::New(env, Kick));
  exports.Set("watcherCreate", Napi::Function::New(env, WatcherCreate));
  exports.Set("watcherArm", Napi::Function::New(env, WatcherArm));
  exports.Set("watcherDisarm", Napi::Function::New(env, WatcherDisarm));
  exports.Set("watcherTakeFired", Napi::Function::New(env, WatcherTakeFired));
  exports.Set("watcherAddEventfd", Napi::Function::New(env, WatcherAddEventfd));
  exports.Set("watcherRemoveEventfd", Napi::Function::New(env, WatcherRemoveEventfd));
  exports.Set("watcherTakeSignalled", Napi::Function::New(env, WatcherTakeSignalled));
  exports.Set("watcherDestroy", Napi::Function::New(env, WatcherDestroy));
  exports.Set("eventfdCreate", Napi::Function::New(env, EventfdCreate));
  exports.Set("eventfdSignal", Napi::Function::New(env, EventfdSignal));
  exports.Set("pollEventfd", Napi::Function::New(env, PollEventfd));
  exports.Set("pollClose", Napi::Function::New(env, PollClose));
  exports.Set("pollFd", Napi::Function::New(env, PollFd));
  exports.Set("pollFdUpdate", Napi::Function::New(env, PollFdUpdate));
  exports.Set("fallocateAsync", Napi::Function::New(env, FallocateAsync));
  exports.Set("O_RDWR", Napi::Number::New(env, O_RDWR));
  exports.Set("FALLOC_FL_KEEP_SIZE", Napi::Number::New(env, FALLOC_FL_KEEP_SIZE));
  exports.Set("FALLOC_FL_PUNCH_HOLE", Napi::Number::New(env, FALLOC_FL_PUNCH_HOLE));
  return exports;
}

}  // namespace

NODE_API_MODULE(typevisor_kvm, Init)
