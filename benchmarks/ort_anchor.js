// benchmarks/ort_anchor.js — time an ONNX model with ONNX Runtime (CPU execution
// provider), the strongest CPU anchor measured on these machines (docs/ANCHORS in the
// project notes). Run by e2e_compare.py; prints one JSON line like softbio-bench.
//
//   NODE_PATH=<dir>/node_modules node ort_anchor.js MODEL.onnx BATCH SIZE ITERS THREADS
const ort = require('onnxruntime-node');

async function main() {
  const [model, batch, size, iters, threads] = process.argv.slice(2);
  const n = Number(batch), s = Number(size);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const data = new Float32Array(n * 3 * s * s);
  for (let i = 0; i < data.length; ++i) data[i] = ((i * 2654435761) % 1000) / 1000;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, [n, 3, s, s]) };
  await session.run(feeds);  // warm-up
  const ms = [];
  for (let i = 0; i < Number(iters); ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = [...ms].sort((a, b) => a - b);
  console.log(JSON.stringify({ ms, median_ms: sorted[Math.floor(sorted.length / 2)], min_ms: sorted[0] }));
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
