// tests/cuda/simt_emulator.hpp — run softbio's CUDA kernel bodies on the host.
//
// The kernels in kernels/cuda/*.cuh are templates over an execution context (see
// kernels/cuda/simt.cuh). This header supplies the host one, so that every kernel's
// indexing, tiling, padding and cp.async pipeline is tested on a machine with no GPU,
// by a plain host compiler:
//
//   simt::Emulator emu;
//   emu.allow(in.data(), in.size() * 4, /*writable=*/false);     // global memory it may touch
//   emu.allow(out.data(), out.size() * 4, /*writable=*/true);
//   emu.launch({gx, gy, gz}, threads, smem_bytes, [&](simt::Ctx& c) { body<...>(c, args); });
//
// How it models the hardware, and what it catches:
//  * Each thread of a block is a coroutine with its own stack and registers;
//    __syncthreads (Ctx::sync) suspends it until every thread of the block has arrived.
//    A thread that exits while others wait at a barrier, or threads that reach
//    different numbers of barriers, are reported (divergent __syncthreads).
//  * Between two barriers the threads run one after another, in forward order, then
//    reverse, then a seeded shuffle (rotating per barrier interval): a read of shared
//    memory that another thread writes in the same interval (a missing barrier) gives a
//    different, wrong result in at least one of the orders.
//  * cp.async: on hardware a copy lands at some moment between its issue and the
//    cp.async.wait_group that covers it. The emulator picks one of the two extremes per
//    copy at random (seeded): at issue, or only at that thread's wait (all but the newest
//    N committed groups). Reading a tile before waiting for it reads the poison below; a
//    stage refilled while other threads still read it (a missing trailing barrier) is
//    overwritten under their feet.
//  * Shared memory is filled with NaN at the start of every block: reading a word no
//    one wrote poisons the result.
//  * Every global load/store and every cp.async source is checked against the ranges
//    given to allow() (and stores against the writable ones), with alignment checks for
//    16-byte accesses: out-of-bounds accesses are reported with the thread and block.
//  * Launch limits: at most 1024 threads per block and 48 KiB of dynamic shared memory
//    (more would need cudaFuncSetAttribute, which the kernels do not call).
//  * mma.sync (the tensor-core kernels, kernels/cuda/conv2d_mma.cuh): the one
//    warp-synchronous operation. Threads 32w .. 32w+31 form warp w. A lane calling
//    Ctx::mma deposits its fragment registers and suspends; when all 32 lanes of the warp
//    have arrived (with the same shape), the emulator gathers the fragments into A, B
//    and C by the PTX ISA's layout tables (simt::ptx below, written from the ISA's
//    "Matrix Fragments for mma.m16n8k8 / mma.m16n8k16" text, independently of the
//    kernel's own copy), computes D = A*B + C and scatters D back into each lane's
//    accumulator registers. Operands: tf32 — the fp32 bit pattern with its low 13 bits
//    ignored (the kernel must round with cvt.rna first: unrounded inputs are truncated,
//    and the tests then fail); fp16 / bf16 — the two 16-bit halves of each register,
//    lower column/row in the low half. Arithmetic: every product is exact (at most 11 x 11
//    significant bits); the k products and C are summed in double and rounded once to
//    fp32. (Hardware sums in its own order and may truncate: the tests' tolerance is the
//    fp32 accumulation bound, never bit identity.) A warp whose lanes do not all reach
//    the same mma (divergence, an exited lane, a lane at __syncthreads), or a block that
//    is not a whole number of warps, is reported.
// Not modelled: warp scheduling otherwise (no other kernel uses warp-synchronous code),
// memory ordering between blocks, timing. Errors are collected and thrown as
// std::runtime_error from launch().
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <softbio/kernels/cuda/conv2d_mma.cuh>  // MmaPrecision, the 16-bit conversions
#include <softbio/kernels/cuda/simt.cuh>

// ---- coroutine switch ----------------------------------------------------------------------
// On x86-64 a hand-written switch (save the callee-saved registers and the stack pointer,
// load the other coroutine's): ucontext's swapcontext also saves the signal mask with a
// system call per switch, which made the emulator ~10x slower. Elsewhere: ucontext.
#if defined(__x86_64__) && defined(__linux__)
#define SOFTBIO_SIMT_FAST_SWITCH 1
extern "C" void softbio_simt_switch(void** save_sp, void* load_sp);
__asm__(R"(
    .text
    .weak softbio_simt_switch
    .type softbio_simt_switch,@function
softbio_simt_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size softbio_simt_switch, .-softbio_simt_switch
)");
#endif

namespace simt {

/// The PTX ISA's fragment layouts of mma.sync, as the ISA states them (groupID =
/// laneid >> 2, threadID_in_group = laneid % 4). The emulator's own copy: the kernel's
/// (softbio::cuda::mma_a_coord, ...) is tested against this one and against the tables.
namespace ptx {
/// mma.m16n8k8 .tf32, A (16 x 8, "row"): registers a0..a3, one tf32 each.
///   row = groupID for a0 and a2, groupID + 8 for a1 and a3;
///   col = threadID_in_group for a0 and a1, threadID_in_group + 4 for a2 and a3.
inline void a_tf32(int laneid, int i, int& row, int& col) {
    const int groupID = laneid >> 2, threadID_in_group = laneid % 4;
    row = (i == 0 || i == 2) ? groupID : groupID + 8;
    col = (i == 0 || i == 1) ? threadID_in_group : threadID_in_group + 4;
}
/// mma.m16n8k8 .tf32, B (8 x 8, "col"): b0, b1.
///   row = threadID_in_group for b0, threadID_in_group + 4 for b1;  col = groupID.
inline void b_tf32(int laneid, int i, int& row, int& col) {
    const int groupID = laneid >> 2, threadID_in_group = laneid % 4;
    row = i == 0 ? threadID_in_group : threadID_in_group + 4;
    col = groupID;
}
/// mma.m16n8k16 .f16/.bf16, A (16 x 16): elements a0..a7, two per .b32 register
/// (a0,a1 in the first: a0 in the low 16 bits).
///   row = groupID for ai where 0 <= i < 2 || 4 <= i < 6, groupID + 8 otherwise;
///   col = threadID_in_group * 2 + (i & 0x1) for ai where i < 4, (threadID_in_group * 2) + (i & 0x1) + 8 for i >= 4.
inline void a_16(int laneid, int i, int& row, int& col) {
    const int groupID = laneid >> 2, threadID_in_group = laneid % 4;
    row = ((0 <= i && i < 2) || (4 <= i && i < 6)) ? groupID : groupID + 8;
    col = i < 4 ? threadID_in_group * 2 + (i & 0x1) : threadID_in_group * 2 + (i & 0x1) + 8;
}
/// mma.m16n8k16 .f16/.bf16, B (16 x 8): elements b0..b3, two per register.
///   row = (threadID_in_group * 2) + (i & 0x1) for bi where i < 2, + 8 for i >= 2;  col = groupID.
inline void b_16(int laneid, int i, int& row, int& col) {
    const int groupID = laneid >> 2, threadID_in_group = laneid % 4;
    row = i < 2 ? threadID_in_group * 2 + (i & 0x1) : threadID_in_group * 2 + (i & 0x1) + 8;
    col = groupID;
}
/// C and D (16 x 8, .f32), both shapes: c0..c3.
///   row = groupID for c0 and c1, groupID + 8 for c2 and c3;  col = (threadID_in_group * 2) + (i & 0x1).
inline void c_f32(int laneid, int i, int& row, int& col) {
    const int groupID = laneid >> 2, threadID_in_group = laneid % 4;
    row = i < 2 ? groupID : groupID + 8;
    col = threadID_in_group * 2 + (i & 0x1);
}
/// The value a tensor core multiplies for a .tf32 operand register: its low 13 bits ignored.
inline double tf32_operand(uint32_t bits) {
    float f;
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) bits = 0x7fffffffu;  // NaN stays NaN
    else bits &= 0xffffe000u;
    std::memcpy(&f, &bits, 4);
    return double(f);
}
/// D = A * B + C for one warp: a[lane][0..3], b[lane][0..1] registers, c/d[lane][0..3].
/// Products exact, the sum in double, one rounding to fp32.
inline void mma(softbio::cuda::MmaPrecision kind, const uint32_t (*a)[4], const uint32_t (*b)[2], const float (*c)[4],
                float (*d)[4]) {
    using softbio::cuda::MmaPrecision;
    const int kdim = kind == MmaPrecision::kTf32 ? 8 : 16;
    double A[16][16] = {}, B[16][8] = {}, C[16][8] = {};
    auto half = [&](uint32_t reg, int which) {
        const uint16_t h = uint16_t(which ? reg >> 16 : reg & 0xffffu);
        return double(kind == MmaPrecision::kFp16 ? softbio::cuda::f16_bits_to_f32(h) : softbio::cuda::bf16_bits_to_f32(h));
    };
    int r, col;
    for (int lane = 0; lane < 32; ++lane) {
        if (kind == MmaPrecision::kTf32) {
            for (int i = 0; i < 4; ++i) a_tf32(lane, i, r, col), A[r][col] = tf32_operand(a[lane][i]);
            for (int i = 0; i < 2; ++i) b_tf32(lane, i, r, col), B[r][col] = tf32_operand(b[lane][i]);
        } else {
            for (int i = 0; i < 8; ++i) a_16(lane, i, r, col), A[r][col] = half(a[lane][i / 2], i & 1);
            for (int i = 0; i < 4; ++i) b_16(lane, i, r, col), B[r][col] = half(b[lane][i / 2], i & 1);
        }
        for (int i = 0; i < 4; ++i) c_f32(lane, i, r, col), C[r][col] = double(c[lane][i]);
    }
    for (int lane = 0; lane < 32; ++lane)
        for (int i = 0; i < 4; ++i) {
            c_f32(lane, i, r, col);
            double s = C[r][col];
            for (int k = 0; k < kdim; ++k) s += A[r][k] * B[k][col];
            d[lane][i] = float(s);
        }
}
}  // namespace ptx

struct Dim3 {
    int x = 1, y = 1, z = 1;
};

class Emulator;

/// The per-thread execution context handed to kernel bodies (see kernels/cuda/simt.cuh).
class Ctx {
public:
    int tid() const { return tid_; }
    int ntid() const;
    int bid_x() const;
    int bid_y() const;
    int bid_z() const;
    int nbid_x() const;
    int nbid_y() const;
    int nbid_z() const;
    void sync();
    float* smem() const;
    template <class T>
    T ld(const T* p) const;
    template <class T>
    void st(T* p, const T& v) const;
    void cp_async_f32(float* dst, const float* src, bool ok) { cp_async(dst, src, 4, ok); }
    void cp_async_f128(float* dst, const float* src, bool ok) { cp_async(dst, src, 16, ok); }
    void cp_async_commit();
    template <int N>
    void cp_async_wait() { wait_groups(N); }
    /// mma.sync for this lane's fragments (warp-collective): acc = A * B + acc.
    void mma(softbio::cuda::MmaPrecision kind, float (&acc)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);

private:
    friend class Emulator;
    void cp_async(float* dst, const float* src, int bytes, bool ok);
    void wait_groups(int n);
    Emulator* emu_ = nullptr;
    int tid_ = 0;
};

class Emulator {
public:
    explicit Emulator(uint64_t seed = 1, size_t stack_bytes = 256 * 1024) : rng_(seed), stack_bytes_(stack_bytes) {}
    Emulator(const Emulator&) = delete;
    Emulator& operator=(const Emulator&) = delete;

    /// Declare global memory the kernel may access.
    void allow(const void* p, size_t bytes, bool writable) {
        if (p && bytes) ranges_.push_back({static_cast<const char*>(p), static_cast<const char*>(p) + bytes, writable});
    }
    void clear_allowed() { ranges_.clear(); }
    /// Number of barrier rounds and thread switches of the last launch (for the tests' own checks).
    long long barriers() const { return barriers_; }
    /// Warp-wide mma.sync operations of the last launch.
    long long mmas() const { return mmas_; }

    /// Run `body(Ctx&)` for every thread of every block of the grid. Throws
    /// std::runtime_error with the first problem found (see the file comment).
    void launch(Dim3 grid, int threads, size_t smem_bytes, std::function<void(Ctx&)> body) {
        if (threads < 1 || threads > 1024) throw std::runtime_error("launch: " + std::to_string(threads) + " threads per block");
        if (smem_bytes > 48 * 1024)
            throw std::runtime_error("launch: " + std::to_string(smem_bytes) +
                                     " bytes of dynamic shared memory (> 48 KiB needs cudaFuncSetAttribute)");
        if (grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.y > 65535 || grid.z > 65535)
            throw std::runtime_error("launch: bad grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" +
                                     std::to_string(grid.z));
        body_ = std::move(body);
        grid_ = grid;
        threads_ = threads;
        smem_.assign((smem_bytes + 15) / 16 * 4 + 4, 0.0f);
        smem_bytes_ = smem_bytes;
        error_.clear();
        barriers_ = 0;
        mmas_ = 0;
        ctx_.assign(size_t(threads), Ctx{});
        for (int t = 0; t < threads; ++t) ctx_[size_t(t)].emu_ = this, ctx_[size_t(t)].tid_ = t;
        // Stacks are allocated once per thread slot and never zeroed: only the pages a
        // thread really uses get touched (zeroing 256 x 256 KiB per launch dominated the run time).
        while (stacks_.size() < size_t(threads)) stacks_.emplace_back(new char[stack_bytes_]);
        fibers_.resize(size_t(threads));
        fiber_sp_.assign(size_t(threads), nullptr);
        state_.assign(size_t(threads), State::Runnable);
        syncs_.assign(size_t(threads), 0);
        warp_ops_.assign(size_t(threads), WarpOp{});
        open_.assign(size_t(threads), {});
        committed_.assign(size_t(threads), {});
        for (block_.z = 0; block_.z < grid.z; ++block_.z)
            for (block_.y = 0; block_.y < grid.y; ++block_.y)
                for (block_.x = 0; block_.x < grid.x; ++block_.x) {
                    run_block();
                    if (!error_.empty()) throw std::runtime_error(error_);
                }
    }

private:
    friend class Ctx;
    enum class State { Runnable, AtBarrier, AtWarp, Done };
    struct WarpOp {  // one lane's part of a pending mma.sync
        softbio::cuda::MmaPrecision kind{};
        uint32_t a[4] = {}, b[2] = {};
        float* acc = nullptr;
        long long count = 0;  // this lane's mma.sync calls so far
    };
    struct Range {
        const char *lo, *hi;
        bool writable;
    };
    struct Copy {
        void* dst;
        const void* src;
        int bytes;
        bool ok;
        bool landed;
    };
    bool coin_() { return (rng_() >> 63) != 0; }

    static Emulator*& current() {
        static thread_local Emulator* e = nullptr;
        return e;
    }
    static void entry() {
        Emulator* e = current();
        const int t = e->running_;
        e->body_(e->ctx_[size_t(t)]);
        // A non-empty group still in flight at exit is a kernel bug (its data was never used).
        for (const auto& g : e->committed_[size_t(t)])
            if (!g.empty()) e->fail(t, "exited with cp.async copies still pending");
        if (!e->open_[size_t(t)].empty()) e->fail(t, "exited with uncommitted cp.async copies");
        e->state_[size_t(t)] = State::Done;
    }
#ifdef SOFTBIO_SIMT_FAST_SWITCH
    [[noreturn]] static void fiber_start() {
        entry();
        Emulator* e = current();
        softbio_simt_switch(&e->fiber_sp_[size_t(e->running_)], e->scheduler_sp_);
        __builtin_unreachable();
    }
    void to_fiber(int t) { softbio_simt_switch(&scheduler_sp_, fiber_sp_[size_t(t)]); }
    void to_scheduler(int t) { softbio_simt_switch(&fiber_sp_[size_t(t)], scheduler_sp_); }
#else
    void to_fiber(int t) { swapcontext(&scheduler_, &fibers_[size_t(t)]); }
    void to_scheduler(int t) { swapcontext(&fibers_[size_t(t)], &scheduler_); }
#endif

    void run_block() {
        // Poison shared memory: NaN everywhere (0xFF bytes).
        std::memset(smem_.data(), 0xFF, smem_.size() * sizeof(float));
        current() = this;
        for (int t = 0; t < threads_; ++t) init_fiber(size_t(t));
        std::vector<int> order(static_cast<size_t>(threads_));
        for (long long round = 0;; ++round) {
            std::iota(order.begin(), order.end(), 0);
            const int mode = int((round + rotation_++) % 3);
            if (mode == 1) std::reverse(order.begin(), order.end());
            if (mode == 2) std::shuffle(order.begin(), order.end(), rng_);
            for (int t : order) {
                if (state_[size_t(t)] != State::Runnable) continue;
                running_ = t;
                to_fiber(t);
            }
            // Warp-collective mma.sync: run it for every warp whose 32 lanes all arrived.
            bool warp_progress = false;
            for (int w0 = 0; w0 < threads_; w0 += 32) {
                int at = 0;
                for (int l = w0; l < std::min(threads_, w0 + 32); ++l) at += state_[size_t(l)] == State::AtWarp;
                if (!at) continue;
                if (threads_ % 32) {
                    fail(w0, "mma.sync in a block of " + std::to_string(threads_) + " threads (not whole warps)");
                    return;
                }
                if (at != 32) {
                    int l = w0;
                    while (state_[size_t(l)] == State::AtWarp) ++l;
                    fail(l, "mma.sync reached by only " + std::to_string(at) + " of the 32 lanes of warp " +
                                std::to_string(w0 / 32) + " (this lane " +
                                (state_[size_t(l)] == State::Done ? "exited" : "waits at __syncthreads") + ")");
                    return;
                }
                run_warp_mma(w0);
                if (!error_.empty()) return;
                warp_progress = true;
            }
            if (warp_progress) continue;
            int done = 0, waiting = 0;
            for (State s : state_) done += s == State::Done, waiting += s == State::AtBarrier;
            if (done == threads_) return;
            if (done > 0) {
                fail(-1, "divergent __syncthreads: " + std::to_string(done) + " threads exited while " +
                             std::to_string(waiting) + " wait at a barrier");
                return;
            }
            for (int t = 1; t < threads_; ++t)
                if (syncs_[size_t(t)] != syncs_[0]) {
                    fail(t, "divergent __syncthreads: at barrier #" + std::to_string(syncs_[size_t(t)]) + " while thread 0 is at #" +
                                std::to_string(syncs_[0]));
                    return;
                }
            ++barriers_;
            for (auto& s : state_) s = State::Runnable;
        }
    }

    void run_warp_mma(int w0) {
        const WarpOp& first = warp_ops_[size_t(w0)];
        uint32_t a[32][4], b[32][2];
        float c[32][4], d[32][4];
        for (int l = 0; l < 32; ++l) {
            const WarpOp& op = warp_ops_[size_t(w0 + l)];
            if (op.kind != first.kind || op.count != first.count) {
                fail(w0 + l, "lanes of one warp at different mma.sync calls (divergent warp)");
                return;
            }
            for (int i = 0; i < 4; ++i) a[l][i] = op.a[i], c[l][i] = op.acc[i];
            for (int i = 0; i < 2; ++i) b[l][i] = op.b[i];
        }
        ptx::mma(first.kind, a, b, c, d);
        for (int l = 0; l < 32; ++l) {
            for (int i = 0; i < 4; ++i) warp_ops_[size_t(w0 + l)].acc[i] = d[l][i];
            state_[size_t(w0 + l)] = State::Runnable;
        }
        ++mmas_;
    }

    // Separate (and not inlined) so that getcontext's "returns twice" cannot clobber the caller's loop.
    __attribute__((noinline)) void init_fiber(size_t t) {
#ifdef SOFTBIO_SIMT_FAST_SWITCH
        // A fresh stack that softbio_simt_switch "returns" into fiber_start from: six zero
        // registers, then fiber_start's address, then a dummy return address for it, with
        // the stack 16-byte aligned the way a call leaves it.
        auto top = reinterpret_cast<std::uintptr_t>(stacks_[t].get() + stack_bytes_) & ~std::uintptr_t(15);
        void** sp = reinterpret_cast<void**>(top);
        *--sp = nullptr;                                          // fiber_start's return address (never used)
        *--sp = reinterpret_cast<void*>(&Emulator::fiber_start);  // popped by `ret`
        for (int r = 0; r < 6; ++r) *--sp = nullptr;              // rbp rbx r12-r15
        fiber_sp_[t] = sp;
#else
        ucontext_t& f = fibers_[t];
        getcontext(&f);
        f.uc_stack.ss_sp = stacks_[t].get();
        f.uc_stack.ss_size = stack_bytes_;
        f.uc_link = &scheduler_;
        makecontext(&f, &Emulator::entry, 0);
#endif
        state_[t] = State::Runnable;
        syncs_[t] = 0;
        warp_ops_[t] = WarpOp{};
        open_[t].clear();
        committed_[t].clear();
    }

    void fail(int t, const std::string& what) {
        if (!error_.empty()) return;
        error_ = "simt emulator: block (" + std::to_string(block_.x) + "," + std::to_string(block_.y) + "," +
                 std::to_string(block_.z) + ")" + (t >= 0 ? " thread " + std::to_string(t) : std::string()) + ": " + what;
    }
    bool in_global(int t, const void* p, size_t bytes, bool write, const char* what) {
        const char* c = static_cast<const char*>(p);
        for (const auto& r : ranges_)
            if (c >= r.lo && c + bytes <= r.hi) {
                if (write && !r.writable) break;
                return true;
            }
        fail(t, std::string(what) + (write ? " writes " : " reads ") + std::to_string(bytes) +
                    " bytes outside the allowed global buffers");
        return false;
    }
    bool in_smem(int t, const void* p, size_t bytes) {
        const char* c = static_cast<const char*>(p);
        const char* lo = reinterpret_cast<const char*>(smem_.data());
        if (c >= lo && c + bytes <= lo + smem_bytes_) return true;
        fail(t, "cp.async destination outside the block's dynamic shared memory");
        return false;
    }
    void perform(const Copy& c) {
        if (c.landed) return;
        if (c.ok) std::memcpy(c.dst, c.src, size_t(c.bytes));
        else std::memset(c.dst, 0, size_t(c.bytes));
    }

    std::function<void(Ctx&)> body_;
    Dim3 grid_, block_;
    int threads_ = 0;
    std::vector<float> smem_;
    size_t smem_bytes_ = 0;
    std::vector<Range> ranges_;
    std::vector<Ctx> ctx_;
    std::vector<std::unique_ptr<char[]>> stacks_;
    std::vector<ucontext_t> fibers_;
    ucontext_t scheduler_{};
    std::vector<void*> fiber_sp_;
    void* scheduler_sp_ = nullptr;
    std::vector<State> state_;
    std::vector<long long> syncs_;
    std::vector<WarpOp> warp_ops_;
    long long mmas_ = 0;
    std::vector<std::vector<Copy>> open_;
    std::vector<std::deque<std::vector<Copy>>> committed_;
    int running_ = 0;
    long long rotation_ = 0, barriers_ = 0;
    std::mt19937_64 rng_;
    size_t stack_bytes_;
    std::string error_;
};

inline int Ctx::ntid() const { return emu_->threads_; }
inline int Ctx::bid_x() const { return emu_->block_.x; }
inline int Ctx::bid_y() const { return emu_->block_.y; }
inline int Ctx::bid_z() const { return emu_->block_.z; }
inline int Ctx::nbid_x() const { return emu_->grid_.x; }
inline int Ctx::nbid_y() const { return emu_->grid_.y; }
inline int Ctx::nbid_z() const { return emu_->grid_.z; }
inline float* Ctx::smem() const { return emu_->smem_.data(); }

inline void Ctx::sync() {
    Emulator* e = emu_;
    e->state_[size_t(tid_)] = Emulator::State::AtBarrier;
    ++e->syncs_[size_t(tid_)];
    e->to_scheduler(tid_);
}

template <class T>
T Ctx::ld(const T* p) const {
    if (alignof(T) > 1 && (reinterpret_cast<std::uintptr_t>(p) % alignof(T)) != 0) {
        emu_->fail(tid_, "misaligned global load");
        return T{};
    }
    if (!emu_->in_global(tid_, p, sizeof(T), false, "load")) return T{};
    return *p;
}

template <class T>
void Ctx::st(T* p, const T& v) const {
    if (alignof(T) > 1 && (reinterpret_cast<std::uintptr_t>(p) % alignof(T)) != 0) {
        emu_->fail(tid_, "misaligned global store");
        return;
    }
    if (!emu_->in_global(tid_, p, sizeof(T), true, "store")) return;
    *p = v;
}

inline void Ctx::cp_async(float* dst, const float* src, int bytes, bool ok) {
    const auto a = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p); };
    if (a(dst) % unsigned(bytes) || a(src) % unsigned(bytes)) {
        emu_->fail(tid_, "misaligned cp.async of " + std::to_string(bytes) + " bytes");
        return;
    }
    if (!emu_->in_smem(tid_, dst, size_t(bytes))) return;
    if (ok && !emu_->in_global(tid_, src, size_t(bytes), false, "cp.async")) return;
    Emulator::Copy copy{dst, src, bytes, ok, false};
    if (emu_->coin_()) {  // lands at once
        emu_->perform(copy);
        copy.landed = true;
    }
    emu_->open_[size_t(tid_)].push_back(copy);
}

inline void Ctx::mma(softbio::cuda::MmaPrecision kind, float (&acc)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    Emulator* e = emu_;
    Emulator::WarpOp& op = e->warp_ops_[size_t(tid_)];
    op.kind = kind, op.acc = acc, ++op.count;
    for (int i = 0; i < 4; ++i) op.a[i] = a[i];
    for (int i = 0; i < 2; ++i) op.b[i] = b[i];
    e->state_[size_t(tid_)] = Emulator::State::AtWarp;
    e->to_scheduler(tid_);  // resumed once the warp's mma has written acc
}

inline void Ctx::cp_async_commit() {
    auto& open = emu_->open_[size_t(tid_)];
    emu_->committed_[size_t(tid_)].push_back(open);
    open.clear();
}

inline void Ctx::wait_groups(int n) {
    auto& groups = emu_->committed_[size_t(tid_)];
    while (int(groups.size()) > n) {
        for (const auto& c : groups.front()) emu_->perform(c);
        groups.pop_front();
    }
}

}  // namespace simt
