// Load a TensorFlow.js graph model from disk with @tensorflow/tfjs (no tfjs-node) and print its
// predictions as JSON: the same files the dashboard serves to the browser, checked in Node.
//
//   node clients/node/predict.mjs MODEL_DIR_OR_MODEL_JSON '[[1,2],[5,7]]'
//   echo '[[1,2],[5,7]]' | node clients/node/predict.mjs models/linear_model/1/tfjs -
//
// stdout: {"predictions": [[2.93], [5.88]], "outputs": {"output_0": [[2.93], [5.88]]}}
// (one key per signature output; "predictions" is the only output, as TF Serving's REST API
// names it). Errors go to stderr with exit status 1; a bad command line exits with 2.
import { readFile, stat } from "node:fs/promises";
import path from "node:path";

import * as tf from "@tensorflow/tfjs";

/** An IOHandler that reads model.json and its weight shards from the local disk. */
export function fileHandler(modelJsonPath) {
  const folder = path.dirname(modelJsonPath);
  return {
    async load() {
      const modelJSON = JSON.parse(await readFile(modelJsonPath, "utf8"));
      return tf.io.getModelArtifactsForJSON(modelJSON, async (weightsManifest) => {
        const specs = [];
        const buffers = [];
        for (const group of weightsManifest) {
          specs.push(...group.weights);
          for (const shard of group.paths) {
            buffers.push(await readFile(path.join(folder, shard)));
          }
        }
        const joined = Buffer.concat(buffers);
        const weightData = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength);
        return [specs, weightData];
      });
    },
  };
}

async function readRows(arg) {
  const text = arg === "-" ? await new Promise((resolve, reject) => {
    let data = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => { data += chunk; });
    process.stdin.on("end", () => resolve(data));
    process.stdin.on("error", reject);
  }) : arg;
  const rows = JSON.parse(text);
  if (!Array.isArray(rows) || rows.length === 0) {
    throw new Error("ROWS must be a non-empty JSON array of rows, e.g. [[1,2],[5,7]]");
  }
  return rows;
}

async function modelJsonPath(arg) {
  const info = await stat(arg);
  return info.isDirectory() ? path.join(arg, "model.json") : arg;
}

async function main(argv) {
  if (argv.length !== 2) {
    process.stderr.write("usage: node predict.mjs MODEL_DIR_OR_MODEL_JSON ROWS_JSON|-\n");
    return 2;
  }
  await tf.setBackend("cpu");
  const model = await tf.loadGraphModel(fileHandler(await modelJsonPath(argv[0])));
  const rows = await readRows(argv[1]);
  const inputKey = Object.keys(model.signature?.inputs ?? {})[0];
  const dtype = model.signature?.inputs?.[inputKey]?.dtype === "DT_INT32" ? "int32" : "float32";
  const input = tf.tensor(rows, undefined, dtype);
  const outputKeys = Object.keys(model.signature?.outputs ?? {});
  const outputNames = outputKeys.map((key) => model.signature.outputs[key].name);
  const results = model.execute(input, outputNames.length ? outputNames : undefined);
  const tensors = Array.isArray(results) ? results : [results];
  const outputs = {};
  for (let i = 0; i < tensors.length; i += 1) {
    outputs[outputKeys[i] ?? `output_${i}`] = await tensors[i].array();
  }
  const answer = tensors.length === 1 ? { predictions: Object.values(outputs)[0], outputs } : { outputs };
  process.stdout.write(`${JSON.stringify(answer)}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error) => { process.stderr.write(`error: ${error.message}\n`); process.exitCode = 1; },
);
