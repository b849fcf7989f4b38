// The host emulator behind cuda_emu.h: fibers, rendezvous, the tensor-core
// and async-copy instructions, and the CUDA runtime calls Graft's kernels and
// their tests make, over host memory. See cuda_emu.h for what it checks.
#include "tests/emu/cuda_emu.h"

#include <sys/mman.h>
#if defined(__SANITIZE_ADDRESS__) || defined(__clang__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

// ---- context switch ---------------------------------------------------------------------------
// x86-64: saves the callee-saved registers and the FPU/SSE control words on
// the running stack, stores its pointer in *save and continues on `load`
// (no signal-mask system call, unlike swapcontext). Elsewhere: ucontext.
#if defined(__x86_64__)
extern "C" void graft_emu_switch(void** save, void* load);
asm(R"(
    .pushsection .text
    .globl graft_emu_switch
    .type graft_emu_switch, @function
graft_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    fnstcw (%rsp)
    stmxcsr 8(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    fldcw (%rsp)
    ldmxcsr 8(%rsp)
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size graft_emu_switch, .-graft_emu_switch
    .popsection
)");
#endif

namespace graft::emu {

thread_local ThreadState* current = nullptr;

namespace {

// The device the emulator pretends to be (an H100 SXM's limits).
constexpr int kSmCount = 132;
constexpr int kMaxThreads = 1024;
constexpr size_t kDefaultSmem = 48 * 1024;
constexpr size_t kMaxSmemOptin = 232448;  // 227 KB
constexpr size_t kStackBytes = 256 * 1024;

[[noreturn]] void fault(const std::string& what) { throw std::runtime_error("CUDA emulator: " + what); }

// ---- device allocations -----------------------------------------------------------------------
std::mutex g_alloc_mutex;
std::map<uintptr_t, size_t>& allocations() {
  static auto* m = new std::map<uintptr_t, size_t>;  // never destroyed: static destructors free memory late
  return *m;
}
// The allocations as a launch sees them (they cannot change while it runs).
using AllocationList = std::vector<std::pair<uintptr_t, size_t>>;
AllocationList snapshot_allocations() {
  std::lock_guard<std::mutex> lock(g_alloc_mutex);
  return AllocationList(allocations().begin(), allocations().end());
}
bool in_allocation(const AllocationList& list, const void* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = std::upper_bound(list.begin(), list.end(), std::make_pair(a, ~size_t(0)));
  if (it == list.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}

// Per-kernel dynamic shared-memory opt-in (cudaFuncAttributeMaxDynamicSharedMemorySize).
std::map<const void*, size_t>& smem_optin() {
  static auto* m = new std::map<const void*, size_t>;
  return *m;
}

thread_local cudaError_t t_last_error = cudaSuccess;

// ---- fibers -------------------------------------------------------------------------------------
struct Copy {
  void* dst;
  const void* src;
  int bytes, src_bytes;
};

enum class Wait { none, block, warp, done };

struct Context {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
  // The stack it runs on, for AddressSanitizer's fiber annotations (the
  // scheduler's is learnt when a fiber first starts).
  const void* stack_bottom = nullptr;
  size_t stack_size = 0;
};

// Under AddressSanitizer every switch is announced, so that it tracks the
// fibers' stacks (GRAFT_EMU_ASAN: an ASan build of the emulated tests).
#if defined(__SANITIZE_ADDRESS__)
#define GRAFT_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRAFT_EMU_ASAN 1
#endif
#endif

// `leaving`: the calling context ends for good (a finished fiber).
void switch_context(Context& from, Context& to, bool leaving = false) {
#if defined(GRAFT_EMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(leaving ? nullptr : &fake, to.stack_bottom, to.stack_size);
#else
  (void)leaving;
#endif
#if defined(__x86_64__)
  graft_emu_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
#if defined(GRAFT_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

struct Fiber {
  ThreadState state;
  Context ctx;
  char* stack = nullptr;
  int linear = 0, warp = 0, lane = 0;
  Wait wait = Wait::none;
  uint64_t wait_gen = 0;
  uint64_t warp_round = 0;  // collectives this lane has entered
  std::vector<Copy> open_group;
  std::deque<std::vector<Copy>> groups;
};

struct Warp {
  int lanes = 32;             // lanes that exist (the block's last warp may be short)
  uint64_t completed = 0;     // rounds released
  int arrived[2] = {0, 0};
  const char* what[2] = {nullptr, nullptr};
  uint32_t slots[2][32][kSlotWords];
  // mma.sync: the 16x8 product A*B of a round, computed once by its first reader.
  bool product_ready[2] = {false, false};
  float product[2][16][8];
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  int live = 0;
  int barrier_arrived = 0;
  uint64_t barrier_gen = 0;
  unsigned char* smem = nullptr;
  size_t smem_bytes = 0;
  Context scheduler;
  const std::function<void()>* body = nullptr;
  const AllocationList* allocations = nullptr;
  std::vector<char*>* stacks = nullptr;
  std::string error;  // set by a fiber that faulted
};

thread_local Block* t_block = nullptr;
thread_local Fiber* t_fiber = nullptr;

// Stacks, one per thread of a block, each with a guard page below it. A host
// worker borrows a set for a launch; sets are reused across launches.
std::mutex g_stack_mutex;
std::vector<std::unique_ptr<std::vector<char*>>> g_free_stack_sets;
std::unique_ptr<std::vector<char*>> borrow_stacks() {
  std::lock_guard<std::mutex> lock(g_stack_mutex);
  if (g_free_stack_sets.empty()) return std::make_unique<std::vector<char*>>();
  auto set = std::move(g_free_stack_sets.back());
  g_free_stack_sets.pop_back();
  return set;
}
void return_stacks(std::unique_ptr<std::vector<char*>> set) {
  std::lock_guard<std::mutex> lock(g_stack_mutex);
  g_free_stack_sets.push_back(std::move(set));
}
char* stack_for(std::vector<char*>& stacks, size_t i) {
  while (stacks.size() <= i) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) fault("cannot map a thread stack");
    mprotect(m, page, PROT_NONE);
    stacks.push_back(static_cast<char*>(m) + page);
  }
  return stacks[i];
}

// Host threads that run blocks: GRAFT_EMU_THREADS, else every core.
unsigned host_workers() {
  static const unsigned n = [] {
    if (const char* e = std::getenv("GRAFT_EMU_THREADS")) {
      const int v = std::atoi(e);
      if (v > 0) return unsigned(v);
    }
    return std::max(1u, std::thread::hardware_concurrency());
  }();
  return n;
}

void yield() {
  Fiber* f = t_fiber;
  switch_context(f->ctx, t_block->scheduler);
}

void run_copies(std::vector<Copy>& group) {
  for (const Copy& c : group) {
    if (c.src_bytes > 0) std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
    if (c.src_bytes < c.bytes) std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, size_t(c.bytes - c.src_bytes));
  }
  group.clear();
}

void release_barrier_if_complete(Block& b) {
  if (b.barrier_arrived > 0 && b.barrier_arrived == b.live) {
    b.barrier_arrived = 0;
    ++b.barrier_gen;
  }
}

void fiber_entry() {
  Block& b = *t_block;
  Fiber& f = *t_fiber;
#if defined(GRAFT_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &b.scheduler.stack_bottom, &b.scheduler.stack_size);
#endif
  try {
    (*b.body)();
  } catch (const std::exception& e) {
    if (b.error.empty()) b.error = e.what();
  }
  // Copies still in flight land before the thread is gone.
  for (auto& g : f.groups) run_copies(g);
  run_copies(f.open_group);
  f.wait = Wait::done;
  --b.live;
  release_barrier_if_complete(b);
  switch_context(f.ctx, b.scheduler, true);
}

// A context that starts fiber_entry() on `stack` when switched to.
void start_context(Context& c, char* stack) {
  c.stack_bottom = stack;
  c.stack_size = kStackBytes;
#if defined(GRAFT_EMU_ASAN)
  // A reused stack still carries the redzones of the frames that never returned.
  __asan_unpoison_memory_region(stack, kStackBytes);
#endif
#if defined(__x86_64__)
  // The frame graft_emu_switch pops: control words, six registers, then the
  // return address (fiber_entry) with a null "caller" above it, so that at
  // fiber_entry's first instruction rsp + 8 is 16-byte aligned as after a call.
  auto* top = reinterpret_cast<uint64_t*>(stack + kStackBytes);  // 16-byte aligned
  top[-1] = 0;
  top[-2] = reinterpret_cast<uint64_t>(&fiber_entry);
  for (int r = 3; r <= 8; ++r) top[-r] = 0;
  uint16_t cw;
  uint32_t csr;
  asm volatile("fnstcw %0" : "=m"(cw));
  asm volatile("stmxcsr %0" : "=m"(csr));
  top[-10] = cw;
  top[-9] = csr;
  c.sp = top - 10;
#else
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = kStackBytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, fiber_entry, 0);
#endif
}

bool ready(const Block& b, const Fiber& f) {
  switch (f.wait) {
    case Wait::none: return true;
    case Wait::block: return b.barrier_gen != f.wait_gen;
    case Wait::warp: return b.warps[static_cast<size_t>(f.warp)].completed >= f.wait_gen;
    case Wait::done: return false;
  }
  return false;
}

std::string describe_deadlock(const Block& b) {
  std::ostringstream os;
  os << "deadlock in block (" << b.fibers[0].state.block_idx.x << "," << b.fibers[0].state.block_idx.y << ","
     << b.fibers[0].state.block_idx.z << "): ";
  int at_barrier = 0, exited = 0;
  for (const Fiber& f : b.fibers) {
    if (f.wait == Wait::block) ++at_barrier;
    if (f.wait == Wait::done) ++exited;
  }
  os << at_barrier << " threads at __syncthreads, " << exited << " exited";
  for (size_t w = 0; w < b.warps.size(); ++w) {
    const Warp& wp = b.warps[w];
    for (int k = 0; k < 2; ++k)
      if (wp.arrived[k] > 0)
        os << "; warp " << w << ": " << wp.arrived[k] << " of " << wp.lanes << " lanes at " << wp.what[k];
  }
  return os.str();
}

void run_block(Block& b, const LaunchConfig& cfg, uint3 block_idx) {
  const int nx = int(cfg.block.x), ny = int(cfg.block.y), nz = int(cfg.block.z);
  const int n = nx * ny * nz;
  b.fibers.assign(static_cast<size_t>(n), Fiber{});
  b.warps.assign(static_cast<size_t>((n + 31) / 32), Warp{});
  for (size_t w = 0; w < b.warps.size(); ++w) b.warps[w].lanes = std::min(32, n - int(w) * 32);
  b.live = n;
  b.barrier_arrived = 0;
  b.barrier_gen = 0;
  b.error.clear();
  for (int i = 0; i < n; ++i) {
    Fiber& f = b.fibers[static_cast<size_t>(i)];
    f.state.thread_idx = make_uint3(unsigned(i % nx), unsigned((i / nx) % ny), unsigned(i / (nx * ny)));
    f.state.block_idx = block_idx;
    f.state.block_dim = cfg.block;
    f.state.grid_dim = cfg.grid;
    f.linear = i;
    f.warp = i / 32;
    f.lane = i % 32;
    f.stack = stack_for(*b.stacks, static_cast<size_t>(i));
    start_context(f.ctx, f.stack);
  }
  for (;;) {
    bool ran = false, all_done = true;
    for (Fiber& f : b.fibers) {
      if (f.wait == Wait::done) continue;
      all_done = false;
      if (!ready(b, f)) continue;
      t_fiber = &f;
      current = &f.state;
      switch_context(b.scheduler, f.ctx);
      ran = true;
      if (!b.error.empty()) {
        current = nullptr;
        throw std::runtime_error(b.error);
      }
    }
    if (all_done) break;
    if (!ran) fault(describe_deadlock(b));
  }
  current = nullptr;
  t_fiber = nullptr;
}

// An emulator fault inside a fiber: recorded, and the fiber never resumes.
[[noreturn]] void fiber_fault(const std::string& what) {
  Block& b = *t_block;
  if (b.error.empty()) {
    const ThreadState& s = *current;
    std::ostringstream os;
    os << "CUDA emulator: " << what << " (block " << s.block_idx.x << "," << s.block_idx.y << "," << s.block_idx.z
       << ", thread " << s.thread_idx.x << "," << s.thread_idx.y << "," << s.thread_idx.z << ")";
    b.error = os.str();
  }
  t_fiber->wait = Wait::done;
  switch_context(t_fiber->ctx, b.scheduler, true);
  std::abort();  // never resumed
}

Fiber& me(const char* what) {
  if (!t_fiber) fault(std::string(what) + " called outside a kernel");
  return *t_fiber;
}

}  // namespace

// ---- launches -----------------------------------------------------------------------------------
cudaError_t launch(const LaunchConfig& cfg, const void* fn, const std::function<void()>& body) {
  if (t_block) fault("a kernel launched another kernel (dynamic parallelism is not emulated)");
  const uint64_t threads = uint64_t(cfg.block.x) * cfg.block.y * cfg.block.z;
  // A refused launch fails as on the device (the error waits for
  // cudaGetLastError) and says why on stderr, which the runtime does not.
  auto refuse = [&](cudaError_t e, const std::string& why) {
    std::fprintf(stderr, "CUDA emulator: launch refused (grid %u,%u,%u block %u,%u,%u, %zu bytes of shared memory): %s\n",
                 cfg.grid.x, cfg.grid.y, cfg.grid.z, cfg.block.x, cfg.block.y, cfg.block.z, cfg.smem, why.c_str());
    return t_last_error = e;
  };
  if (threads == 0 || threads > kMaxThreads || cfg.block.x > 1024 || cfg.block.y > 1024 || cfg.block.z > 64)
    return refuse(cudaErrorInvalidConfiguration, "block size out of range (at most 1024 threads, z at most 64)");
  if (cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0 || cfg.grid.x > 2147483647u || cfg.grid.y > 65535 ||
      cfg.grid.z > 65535)
    return refuse(cudaErrorInvalidConfiguration, "grid size out of range (x < 2^31, y and z <= 65535, none 0)");
  size_t limit = kDefaultSmem;
  {
    std::lock_guard<std::mutex> lock(g_alloc_mutex);
    auto it = smem_optin().find(fn);
    if (it != smem_optin().end()) limit = std::max(limit, it->second);
  }
  if (cfg.smem > limit)
    return refuse(cudaErrorInvalidValue, "dynamic shared memory above the kernel's limit of " + std::to_string(limit) +
                                             " bytes (cudaFuncAttributeMaxDynamicSharedMemorySize)");

  const AllocationList allocs = snapshot_allocations();
  const uint64_t blocks = uint64_t(cfg.grid.x) * cfg.grid.y * cfg.grid.z;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::string error;
  std::mutex error_mutex;
  // Each worker takes blocks in grid order until none is left.
  auto worker = [&]() {
    Block b;
    auto stacks = borrow_stacks();
    // Dynamic shared memory: 128-byte aligned, refilled with a pattern for
    // every block (shared memory starts undefined).
    std::unique_ptr<unsigned char[]> smem_store(new unsigned char[cfg.smem + 128]);
    b.smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_store.get()) + 127) & ~uintptr_t(127));
    b.smem_bytes = cfg.smem;
    b.body = &body;
    b.allocations = &allocs;
    b.stacks = stacks.get();
    t_block = &b;
    try {
      for (;;) {
        const uint64_t i = next.fetch_add(1);
        if (i >= blocks || failed.load()) break;
        std::memset(b.smem, 0xA5, cfg.smem);
        const unsigned x = unsigned(i % cfg.grid.x), y = unsigned((i / cfg.grid.x) % cfg.grid.y),
                       z = unsigned(i / (uint64_t(cfg.grid.x) * cfg.grid.y));
        run_block(b, cfg, make_uint3(x, y, z));
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!failed.exchange(true)) error = e.what();
    }
    t_block = nullptr;
    return_stacks(std::move(stacks));
  };
  const unsigned workers = static_cast<unsigned>(std::min<uint64_t>(host_workers(), blocks));
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < workers; ++w) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  if (failed.load()) throw std::runtime_error(error);
  return cudaSuccess;
}

unsigned char* dynamic_smem() {
  if (!t_block) fault("dynamic shared memory used outside a kernel");
  return t_block->smem;
}

void sync_threads() {
  Fiber& f = me("__syncthreads");
  Block& b = *t_block;
  f.wait = Wait::block;
  f.wait_gen = b.barrier_gen;
  ++b.barrier_arrived;
  release_barrier_if_complete(b);
  while (!ready(b, f)) yield();
  f.wait = Wait::none;
}

int lane_id() { return me("lane id").lane; }

const Slots& warp_exchange(unsigned mask, const char* what, const uint32_t* words, int n) {
  Fiber& f = me(what);
  Block& b = *t_block;
  Warp& w = b.warps[static_cast<size_t>(f.warp)];
  const unsigned full = w.lanes == 32 ? 0xffffffffu : ((1u << w.lanes) - 1u);
  if ((mask & full) != full)
    fiber_fault(std::string(what) + " with a partial-warp mask is not emulated (mask " + std::to_string(mask) + ")");
  const uint64_t round = f.warp_round++;
  const int k = static_cast<int>(round & 1);
  if (w.arrived[k] == 0) {
    w.what[k] = what;
    w.product_ready[k] = false;
  } else if (std::strcmp(w.what[k], what) != 0) {
    fiber_fault(std::string("warp lanes diverged: one lane at ") + what + ", another at " + w.what[k]);
  }
  std::memcpy(w.slots[k][f.lane], words, sizeof(uint32_t) * static_cast<size_t>(n));
  if (++w.arrived[k] == w.lanes) {
    w.arrived[k] = 0;
    w.completed = round + 1;
  } else {
    f.wait = Wait::warp;
    f.wait_gen = round + 1;
    while (!ready(b, f)) yield();
    f.wait = Wait::none;
  }
  return w.slots[k];
}

// ---- cp.async -------------------------------------------------------------------------------------
void cp_async(void* smem, const void* gmem, int bytes, int src_bytes) {
  Fiber& f = me("cp.async");
  Block& b = *t_block;
  const auto s = reinterpret_cast<uintptr_t>(smem), g = reinterpret_cast<uintptr_t>(gmem);
  if (s % unsigned(bytes) != 0 || g % unsigned(bytes) != 0)
    fiber_fault("cp.async of " + std::to_string(bytes) + " bytes with a misaligned address");
  if (s < reinterpret_cast<uintptr_t>(b.smem) || s + unsigned(bytes) > reinterpret_cast<uintptr_t>(b.smem) + b.smem_bytes)
    fiber_fault("cp.async writes outside the launch's dynamic shared memory (offset " +
                std::to_string(static_cast<long long>(s - reinterpret_cast<uintptr_t>(b.smem))) + ", size " +
                std::to_string(b.smem_bytes) + ")");
  if (src_bytes > 0 && !in_allocation(*b.allocations, gmem, static_cast<size_t>(src_bytes)))
    fiber_fault("cp.async reads " + std::to_string(src_bytes) + " bytes outside every device allocation");
  f.open_group.push_back({smem, gmem, bytes, src_bytes});
}
void cp_async_commit() {
  Fiber& f = me("cp.async.commit_group");
  f.groups.push_back(std::move(f.open_group));
  f.open_group.clear();
}
void cp_async_wait(int pending) {
  Fiber& f = me("cp.async.wait_group");
  while (static_cast<int>(f.groups.size()) > pending) {
    run_copies(f.groups.front());
    f.groups.pop_front();
  }
}

// ---- ldmatrix and mma ---------------------------------------------------------------------------
void ldmatrix(uint32_t* r, int count, bool trans, const void* smem_row) {
  const int lane = me("ldmatrix").lane;  // first: outside a kernel there is no block
  Block& b = *t_block;
  const auto a = reinterpret_cast<uintptr_t>(smem_row);
  // Lanes 8i..8i+7 address matrix i; lanes beyond 8*count are ignored.
  if (lane < 8 * count) {
    if (a % 16 != 0) fiber_fault("ldmatrix row address not 16-byte aligned");
    if (a < reinterpret_cast<uintptr_t>(b.smem) || a + 16 > reinterpret_cast<uintptr_t>(b.smem) + b.smem_bytes)
      fiber_fault("ldmatrix reads outside the launch's dynamic shared memory");
  }
  uint32_t w[2];
  std::memcpy(w, &a, sizeof(a));
  const Slots& s = warp_exchange(0xffffffffu, "ldmatrix", w, 2);
  auto row = [&](int src_lane) {
    uintptr_t p;
    std::memcpy(&p, s[src_lane], sizeof(p));
    return reinterpret_cast<const uint16_t*>(p);
  };
  for (int i = 0; i < count; ++i) {
    if (!trans) {
      const uint16_t* p = row(8 * i + lane / 4);
      r[i] = uint32_t(p[2 * (lane % 4)]) | (uint32_t(p[2 * (lane % 4) + 1]) << 16);
    } else {
      const uint16_t* p0 = row(8 * i + 2 * (lane % 4));
      const uint16_t* p1 = row(8 * i + 2 * (lane % 4) + 1);
      r[i] = uint32_t(p0[lane / 4]) | (uint32_t(p1[lane / 4]) << 16);
    }
  }
}

namespace {
float half_bits(uint32_t reg, int hi, MmaKind kind) {
  const uint16_t bits = static_cast<uint16_t>(hi ? reg >> 16 : reg & 0xffffu);
  if (kind == MmaKind::bf16_16816) {
    const uint32_t f = uint32_t(bits) << 16;
    float v;
    std::memcpy(&v, &f, 4);
    return v;
  }
  __half h;
  std::memcpy(static_cast<void*>(&h), &bits, 2);
  return __half2float(h);
}
float tf32_bits(uint32_t reg) {
  const uint32_t f = reg & 0xffffe000u;  // the tensor core reads the top 19 bits
  float v;
  std::memcpy(&v, &f, 4);
  return v;
}
}  // namespace

void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], MmaKind kind) {
  Fiber& f = me("mma.sync");
  const uint64_t round = f.warp_round;  // the round warp_exchange is about to enter
  const uint32_t w[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  const Slots& s = warp_exchange(0xffffffffu, "mma.sync", w, 6);
  Warp& wp = t_block->warps[static_cast<size_t>(f.warp)];
  const int k = static_cast<int>(round & 1);
  if (!wp.product_ready[k]) {
    // Decode A (16xK) and B (Kx8) from the lanes' registers, then multiply.
    float A[16][16], B[16][8];
    const int kk = kind == MmaKind::tf32_1688 ? 8 : 16;
    for (int m = 0; m < 16; ++m)
      for (int c = 0; c < kk; ++c)
        A[m][c] = kind == MmaKind::tf32_1688
                      ? tf32_bits(s[(m % 8) * 4 + c % 4][(m >= 8 ? 1 : 0) + (c >= 4 ? 2 : 0)])
                      : half_bits(s[(m % 8) * 4 + (c % 8) / 2][(m >= 8 ? 1 : 0) + (c >= 8 ? 2 : 0)], c % 2, kind);
    for (int c = 0; c < kk; ++c)
      for (int n = 0; n < 8; ++n)
        B[c][n] = kind == MmaKind::tf32_1688 ? tf32_bits(s[n * 4 + c % 4][4 + (c >= 4 ? 1 : 0)])
                                             : half_bits(s[n * 4 + (c % 8) / 2][4 + (c >= 8 ? 1 : 0)], c % 2, kind);
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 8; ++n) {
        double acc = 0;
        for (int c = 0; c < kk; ++c) acc += double(A[m][c]) * double(B[c][n]);
        wp.product[k][m][n] = static_cast<float>(acc);
      }
    wp.product_ready[k] = true;
  }
  const int g = f.lane / 4, t = f.lane % 4;
  d[0] += wp.product[k][g][2 * t];
  d[1] += wp.product[k][g][2 * t + 1];
  d[2] += wp.product[k][g + 8][2 * t];
  d[3] += wp.product[k][g + 8][2 * t + 1];
}

}  // namespace graft::emu

// ---- the CUDA runtime, over host memory ------------------------------------------------------------
using graft::emu::t_last_error;

namespace {
cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}
// The emulated device's memory: 80 GB, of which this process uses g_used.
constexpr size_t kDeviceBytes = size_t(80) << 30;
size_t g_used = 0;
std::map<uintptr_t, size_t>& pinned() {
  static auto* m = new std::map<uintptr_t, size_t>;  // never destroyed: static destructors free memory late
  return *m;
}
void* device_alloc(size_t bytes) {
  const size_t rounded = ((std::max<size_t>(bytes, 1) + 255) / 256) * 256;
  {
    std::lock_guard<std::mutex> lock(graft::emu::g_alloc_mutex);
    if (rounded > kDeviceBytes - g_used) return nullptr;
  }
  // Exactly `bytes` (256-byte aligned, like cudaMalloc), so that under
  // AddressSanitizer a read past the end is caught even inside the rounding.
  void* p = nullptr;
  if (posix_memalign(&p, 256, std::max<size_t>(bytes, 1)) != 0) return nullptr;
  std::memset(p, 0xCD, bytes);  // device memory starts undefined
  std::lock_guard<std::mutex> lock(graft::emu::g_alloc_mutex);
  graft::emu::allocations()[reinterpret_cast<uintptr_t>(p)] = bytes;
  g_used += rounded;
  return p;
}
cudaError_t device_free(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(graft::emu::g_alloc_mutex);
    auto it = graft::emu::allocations().find(reinterpret_cast<uintptr_t>(p));
    if (it == graft::emu::allocations().end()) return record(cudaErrorInvalidValue);
    g_used -= ((std::max<size_t>(it->second, 1) + 255) / 256) * 256;
    graft::emu::allocations().erase(it);
  }
  std::free(p);
  return cudaSuccess;
}
}  // namespace

extern "C" {

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return t_last_error; }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    default: return "cudaError(emulated)";
  }
}
const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }

cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : record(cudaErrorInvalidDevice); }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int device) {
  if (device != 0) return record(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *v = graft::emu::kSmCount; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = int(graft::emu::kMaxSmemOptin); return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *v = graft::emu::kMaxThreads; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; return cudaSuccess;
    case cudaDevAttrWarpSize: *v = 32; return cudaSuccess;
    default: return record(cudaErrorInvalidValue);
  }
}
cudaError_t cudaFuncSetAttribute(const void* fn, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || size_t(value) > graft::emu::kMaxSmemOptin) return record(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(graft::emu::g_alloc_mutex);
  graft::emu::smem_optin()[fn] = size_t(value);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = device_alloc(bytes);
  return *p ? cudaSuccess : record(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) { return device_free(p); }
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return device_free(p); }
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = std::malloc(std::max<size_t>(bytes, 1));
  if (!*p) return record(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(graft::emu::g_alloc_mutex);
  pinned()[reinterpret_cast<uintptr_t>(*p)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(graft::emu::g_alloc_mutex);
    if (pinned().erase(reinterpret_cast<uintptr_t>(p)) == 0) return record(cudaErrorInvalidValue);
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  std::lock_guard<std::mutex> lock(graft::emu::g_alloc_mutex);
  *free_bytes = kDeviceBytes - g_used;
  *total = kDeviceBytes;
  return cudaSuccess;
}
// Device allocations, pinned host allocations (by their start or inside),
// and everything else as unregistered host memory.
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* ptr) {
  std::memset(a, 0, sizeof(*a));
  a->type = cudaMemoryTypeUnregistered;
  a->device = 0;
  const uintptr_t u = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(graft::emu::g_alloc_mutex);
  auto inside = [u](const std::map<uintptr_t, size_t>& m) {
    auto it = m.upper_bound(u);
    if (it == m.begin()) return false;
    --it;
    return u < it->first + std::max<size_t>(it->second, 1);
  };
  if (inside(graft::emu::allocations())) {
    a->type = cudaMemoryTypeDevice;
    a->devicePointer = const_cast<void*>(ptr);
  } else if (inside(pinned())) {
    a->type = cudaMemoryTypeHost;
    a->hostPointer = const_cast<void*>(ptr);
  }
  return cudaSuccess;
}
// Work is synchronous, so an event is complete as soon as it is recorded.
cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = reinterpret_cast<cudaEvent_t>(new char); return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete reinterpret_cast<char*>(e); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int v, size_t bytes) {
  if (bytes) std::memset(p, v, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t) { return cudaMemset(p, v, bytes); }
cudaError_t cudaStreamCreate(cudaStream_t* s) { *s = reinterpret_cast<cudaStream_t>(new char); return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) { delete reinterpret_cast<char*>(s); return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

}  // extern "C"
