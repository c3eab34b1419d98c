// ONNX Runtime (CPU) reference for bench_graph: inference throughput of an .onnx file whose
// input is [n, 3, hw, hw] (bench/torch_graph.py --export-onnx writes torchvision's; fedtl's
// exporter will write fedtl's). ONNX Runtime comes from npm into tests/peers (scripts/peers.sh).
// Usage: node bench/ort_graph.js MODEL.onnx --hw 32 --threads 1,2 --batches 1,32 --steps 10
//        [--label NAME] [--arch A]
// Prints: bench=graph impl=ort arch=A hw=H mode=infer threads=T batch=B images_per_s=X
'use strict';
const path = require('path');

function arg(name, dflt) {
    const i = process.argv.indexOf('--' + name);
    return i > 0 ? process.argv[i + 1] : dflt;
}

const loadOrt = require('./ort_load.js');

async function main() {
    const model = process.argv[2];
    const hw = parseInt(arg('hw', '32'), 10), steps = parseInt(arg('steps', '10'), 10);
    const label = arg('label', 'ort'), arch = arg('arch', path.basename(model, '.onnx'));
    const ort = loadOrt();
    if (!ort) {
        console.log('# ort: skipped (no onnxruntime-node: scripts/peers.sh, or set FEDTL_PEERS)');
        return;
    }
    for (const t of arg('threads', '1,2').split(',').map(Number)) {
        const sess = await ort.InferenceSession.create(
            model, {intraOpNumThreads: t, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
        for (const b of arg('batches', '1,32').split(',').map(Number)) {
            const x = new Float32Array(b * 3 * hw * hw).map(() => Math.random());
            const feeds = {[sess.inputNames[0]]: new ort.Tensor('float32', x, [b, 3, hw, hw])};
            const n = b > 1 ? steps : 4 * steps, times = [];
            for (let i = 0; i < n + 2; i++) {
                const t0 = process.hrtime.bigint();
                await sess.run(feeds);
                if (i >= 2)
                    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
            }
            times.sort((p, q) => p - q);
            const med = times[times.length >> 1];
            console.log(`bench=graph impl=${label} arch=${arch} hw=${hw} mode=infer threads=${t} ` +
                        `batch=${b} images_per_s=${(b / med).toFixed(1)}`);
        }
    }
}

main().catch((e) => {
    console.log('# ort: ' + e.message);
    process.exitCode = 1;
});
