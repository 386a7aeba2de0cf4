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
//     for (each image) {
//         softbio::cuda::copy_to_device(ws->input(), image, n);        // same input buffer
//         graph.run();                                                  // = model->forward(ws->input(), 1, *ws)
//         model->decode(*ws, 1, out);
//     }
//
// A graph is tied to its Workspace's buffers, its batch size and input size: for another
// shape, capture another graph. Capture runs on a private stream in
// cudaStreamCaptureModeThreadLocal (other threads may keep using CUDA meanwhile);
// run() launches on the current stream of the calling thread (cuda.hpp).
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "softbio/backend/cuda.hpp"

namespace softbio::cuda {

/// An instantiated CUDA graph captured from whatever `f()` enqueues on the current stream.
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

    /// Record f()'s launches (f must enqueue on cuda::current_stream() and not synchronise).
    template <class F>
    void capture(F&& f) {
        reset();
        SOFTBIO_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "CudaGraph (stream)");
        {
            CudaStreamScope scope(stream_);
            SOFTBIO_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "CudaGraph (begin capture)");
            try {
                f();
            } catch (...) {
                cudaGraph_t partial = nullptr;
                cudaStreamEndCapture(stream_, &partial);
                if (partial) cudaGraphDestroy(partial);
                cudaGetLastError();
                throw;
            }
            SOFTBIO_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_), "CudaGraph (end capture)");
        }
        SOFTBIO_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0), "CudaGraph (instantiate)");
    }

    /// Replay the recorded work on `stream` (asynchronous, like the launches it replaces).
    void launch(cudaStream_t stream = current_stream()) const {
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
    cudaStream_t stream_ = nullptr;
    cudaGraph_t graph_ = nullptr;
    cudaGraphExec_t exec_ = nullptr;
};

/// A model's forward pass for one Workspace and one batch size, as a graph. Reads the
/// input from ws.input(); results land in ws.logits(i) / ws.features() as after forward().
class ForwardGraph {
public:
    template <class Model, class Ws>
    ForwardGraph(const Model& model, Ws& ws, int batch) : batch_(batch) {
        // One eager pass first: it validates the shapes (exceptions are easier to read
        // outside a capture) and caches the device attributes the plans read.
        model.forward(ws.input(), batch, ws);
        SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(current_stream()), "ForwardGraph (warm-up)");
        graph_.capture([&] { model.forward(ws.input(), batch, ws); });
    }
    /// Enqueue one forward pass on `stream`.
    void run(cudaStream_t stream = current_stream()) const { graph_.launch(stream); }
    int batch() const { return batch_; }
    size_t nodes() const { return graph_.nodes(); }

private:
    int batch_;
    CudaGraph graph_;
};

}  // namespace softbio::cuda
