// Run an ONNX model in ONNX Runtime (CPU) on one raw float32 input, for fedtl's side-by-side
// tests. Usage: node ort_run.js model.onnx input.f32 dims(comma list, batch first) output.f32
// Writes the first output as raw float32 (little-endian) and prints its dims.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
    const [model, input, dimsArg, output] = process.argv.slice(2);
    if (!output) {
        console.error('usage: node ort_run.js model.onnx input.f32 d0,d1,... output.f32');
        process.exit(2);
    }
    const dims = dimsArg.split(',').map(Number);
    const raw = fs.readFileSync(input);
    const x = new Float32Array(raw.length / 4);
    for (let i = 0; i < x.length; i++) x[i] = raw.readFloatLE(4 * i);
    const session = await ort.InferenceSession.create(model);
    const feeds = {};
    feeds[session.inputNames[0]] = new ort.Tensor('float32', x, dims);
    const result = await session.run(feeds);
    const y = result[session.outputNames[0]];
    const out = Buffer.alloc(4 * y.data.length);
    for (let i = 0; i < y.data.length; i++) out.writeFloatLE(y.data[i], 4 * i);
    fs.writeFileSync(output, out);
    console.log(y.dims.join(','));
}

main().catch((e) => {
    console.error(e.message || e);
    process.exit(1);
});
