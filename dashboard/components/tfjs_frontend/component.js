// The TF.js route: load tf.min.js and a graph model from the dashboard's static files, predict the
// rows Python sent, and hand the predictions and timings back with Streamlit's component protocol
// (written by hand, nothing vendored): componentReady -> render(args) -> setComponentValue.
"use strict";

const statusLine = document.getElementById("status");
let lastRunId = null;
let tfLoading = null;
const models = new Map();

function post(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

function setHeight() {
  post("streamlit:setFrameHeight", { height: document.body.scrollHeight + 4 });
}

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
  setHeight();
}

// URLs from Python are relative to the dashboard's root; this page lives at <root>/component/<name>/.
function fromRoot(path) {
  return new URL("../../" + path, window.location.href).href;
}

function loadTf(url) {
  if (window.tf) return Promise.resolve(window.tf);
  if (!tfLoading) {
    tfLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = () => (window.tf ? resolve(window.tf) : reject(new Error(url + " did not define tf")));
      script.onerror = () => reject(new Error("could not load " + url + " (run `make tfjs`)"));
      document.head.appendChild(script);
    });
    tfLoading.catch(() => { tfLoading = null; });
  }
  return tfLoading;
}

function oneNumberPerRow(values) {
  return values.map((row) => {
    let item = row;
    while (Array.isArray(item)) {
      if (item.length !== 1) throw new Error("expected one output per row, got " + JSON.stringify(row));
      item = item[0];
    }
    return item;
  });
}

async function run(args) {
  const tf = await loadTf(fromRoot(args.tfjs_url));
  // The CPU backend computes in float32 like the SavedModel; WebGL may use half floats on some GPUs.
  await tf.setBackend("cpu");
  await tf.ready();
  const modelUrl = fromRoot(args.model_url);
  let loadMs = 0;
  if (!models.has(modelUrl)) {
    const start = performance.now();
    models.set(modelUrl, await tf.loadGraphModel(modelUrl));
    loadMs = performance.now() - start;
  }
  const model = models.get(modelUrl);
  const predict = () => tf.tidy(() => model.execute(tf.tensor2d(args.rows, [args.rows.length, args.rows[0].length], "float32")));
  const warm = predict();  // the first call builds kernels; the timed one below is a warm call
  await warm.data();
  warm.dispose();
  const start = performance.now();
  const output = predict();
  const values = await output.array();
  const latencyMs = performance.now() - start;
  output.dispose();
  return { predictions: oneNumberPerRow(values), latency_ms: latencyMs, load_ms: loadMs,
           backend: tf.getBackend(), tfjs_version: tf.version.tfjs };
}

async function onRender(args) {
  if (args.run_id === lastRunId) return;
  lastRunId = args.run_id;
  say("Running the TF.js model in this browser…", false);
  let value;
  try {
    value = { run_id: args.run_id, ...(await run(args)), error: null };
    say(`TensorFlow.js ${value.tfjs_version} (${value.backend} backend) predicted ${value.predictions.length} ` +
        `rows in this browser in ${value.latency_ms.toFixed(2)} ms (model loaded in ${value.load_ms.toFixed(0)} ms).`, false);
  } catch (error) {
    value = { run_id: args.run_id, predictions: null, error: String(error && error.message || error) };
    say("TF.js route failed: " + value.error, true);
  }
  post("streamlit:setComponentValue", { value, dataType: "json" });
}

window.addEventListener("message", (event) => {
  if (event.data && event.data.type === "streamlit:render") onRender(event.data.args);
});
post("streamlit:componentReady", { apiVersion: 1 });
setHeight();
