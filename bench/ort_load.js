// onnxruntime-node for the bench scripts (ort_graph.js, ort_serve.js): from $FEDTL_PEERS, else
// from tests/peers (scripts/peers.sh installs it there); null when neither has it.
'use strict';
const path = require('path');

module.exports = function loadOrt() {
    const roots = [process.env.FEDTL_PEERS, path.join(__dirname, '..', 'tests', 'peers')];
    for (const r of roots.filter(Boolean)) {
        try {
            return require(path.join(r, 'node_modules', 'onnxruntime-node'));
        } catch (e) { /* next */
        }
    }
    return null;
};
