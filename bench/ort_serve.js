// ONNX Runtime (CPU) held open for bench_vs_ort: loads MODEL.onnx for [BATCH, 3, HW, HW] with
// THREADS intra-op threads, runs 3 passes, prints "ready", then for each line "N" on stdin runs
// N passes and prints their median in seconds; exits at the end of stdin. Graph optimisations
// and thread spinning are ONNX Runtime's defaults.
// Usage: node bench/ort_serve.js MODEL.onnx HW BATCH THREADS
'use strict';
const readline = require('readline');

const loadOrt = require('./ort_load.js');

async function main() {
    const [model, hw, batch, threads] = [process.argv[2], ...process.argv.slice(3, 6).map(Number)];
    const ort = loadOrt();
    if (!ort) {
        console.log('skipped (no onnxruntime-node: scripts/peers.sh, or set FEDTL_PEERS)');
        return;
    }
    const sess = await ort.InferenceSession.create(
        model, {intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
    const x = new Float32Array(batch * 3 * hw * hw).map(() => Math.random());
    const feeds = {[sess.inputNames[0]]: new ort.Tensor('float32', x, [batch, 3, hw, hw])};
    for (let i = 0; i < 3; i++)
        await sess.run(feeds);
    console.log('ready');
    for await (const line of readline.createInterface({input: process.stdin})) {
        const n = parseInt(line, 10), times = [];
        for (let i = 0; i < n; i++) {
            const t0 = process.hrtime.bigint();
            await sess.run(feeds);
            times.push(Number(process.hrtime.bigint() - t0) / 1e9);
        }
        times.sort((p, q) => p - q);
        console.log(times[times.length >> 1].toString());
    }
}
main();
