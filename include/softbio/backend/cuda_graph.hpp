// softbio/backend/cuda_graph.hpp — CUDA graphs for the CUDA backend: record a whole
// forward pass once, replay it with one launch.
//
// A ResNet-101 forward is ~110 kernel launches. At batch 1 each kernel runs for only
// microseconds, so the CPU's launch cost (a few microseconds per launch) and the gaps
// between kernels become a large part of the latency. A CUDA graph records the sequence
// of launches (with their arguments: the pointers of one Workspace) once; replaying it
// is a single launch and the GPU runs the kernels back to back.
//
//     auto ws = model->make_workspace(1, 224, 224);
//     softbio::cuda::ForwardGraph graph(*model, *ws, /*batch=*/1);    // warm-up + capture
//     const cudaStream_t s = ws->context().stream;
//     for (each image) {
//         softbio::cuda::copy_to_device(ws->input(), image, n, s);     // same input buffer
//         graph.run();                     // = model->forward(ws->input(), 1, *ws), on s
//         model->decode(*ws, 1, out);      // waits for s
//     }
//
// A graph is tied to its Workspace's buffers, its batch size and input size: for another
// shape, capture another graph. Capture: the workspace's context stream is pointed at a
// private capture stream for the duration of one forward() (and restored afterwards,
// also when the forward throws), in cudaStreamCaptureModeThreadLocal, so other threads
// may keep using CUDA meanwhile. Replay: on any stream; run() uses the workspace's.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "softbio/backend/cuda.hpp"

namespace softbio::cuda {

/// An instantiated CUDA graph of whatever `f(stream)` enqueues on the stream it is given.
class CudaGraph {
public:
    CudaGraph() = default;
    template <class F>
    explicit CudaGraph(F&& f) {
        capture(std::forward<F>(f));
    }
    ~CudaGraph() { reset(); }
    CudaGraph(const CudaGraph&) = delete;
    CudaGraph& operator=(const CudaGraph&) = delete;

    /// Record the launches of f(capture_stream): f must enqueue all its work on that
    /// stream and must not synchronise or allocate.
    template <class F>
    void capture(F&& f) {
        reset();
        SOFTBIO_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "CudaGraph (stream)");
        SOFTBIO_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "CudaGraph (begin capture)");
        try {
            f(stream_);
        } catch (...) {
            cudaGraph_t partial = nullptr;
            cudaStreamEndCapture(stream_, &partial);
            if (partial) cudaGraphDestroy(partial);
            cudaGetLastError();
            reset();
            throw;
        }
        SOFTBIO_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_), "CudaGraph (end capture)");
        SOFTBIO_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0), "CudaGraph (instantiate)");
    }

    /// Replay the recorded work on `stream` (asynchronous, like the launches it replaces).
    void launch(cudaStream_t stream) const {
        if (!exec_) throw Error("CudaGraph::launch: nothing captured");
        SOFTBIO_CUDA_CHECK(cudaGraphLaunch(exec_, stream), "CudaGraph (launch)");
    }

    /// Number of nodes (kernels, copies) in the graph.
    size_t nodes() const {
        size_t n = 0;
        if (graph_) SOFTBIO_CUDA_CHECK(cudaGraphGetNodes(graph_, nullptr, &n), "CudaGraph (nodes)");
        return n;
    }
    bool empty() const { return exec_ == nullptr; }

    void reset() noexcept {
        if (exec_) cudaGraphExecDestroy(exec_);
        if (graph_) cudaGraphDestroy(graph_);
        if (stream_) cudaStreamDestroy(stream_);
        exec_ = nullptr, graph_ = nullptr, stream_ = nullptr;
    }

private:
    cudaStream_t stream_ = nullptr;  // the capture stream
    cudaGraph_t graph_ = nullptr;
    cudaGraphExec_t exec_ = nullptr;
};

/// A model's forward pass for one Workspace and one batch size, as a graph. Reads the
/// input from ws.input(); results land in ws.logits(i) / ws.features() as after forward().
/// The workspace must outlive the graph.
class ForwardGraph {
public:
    template <class Model, class Ws>
    ForwardGraph(const Model& model, Ws& ws, int batch) : batch_(batch), ctx_(&ws.context()) {
        // One eager pass first, on the workspace's stream: it validates the shapes
        // (exceptions are easier to read outside a capture).
        model.forward(ws.input(), batch, ws);
        SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(ws.context().stream), "ForwardGraph (warm-up)");
        CudaContext& ctx = ws.context();
        const cudaStream_t own = ctx.stream;
        graph_.capture([&](cudaStream_t capture_stream) {
            struct Restore {
                CudaContext& ctx;
                cudaStream_t stream;
                ~Restore() { ctx.stream = stream; }
            } restore{ctx, own};
            ctx.stream = capture_stream;
            model.forward(ws.input(), batch, ws);
        });
    }
    /// Enqueue one forward pass on `stream`.
    void run(cudaStream_t stream) const { graph_.launch(stream); }
    /// Enqueue one forward pass on the workspace's context stream (where decode() waits).
    void run() const { graph_.launch(ctx_->stream); }
    int batch() const { return batch_; }
    size_t nodes() const { return graph_.nodes(); }

private:
    int batch_;
    const CudaContext* ctx_;
    CudaGraph graph_;
};

}  // namespace softbio::cuda
