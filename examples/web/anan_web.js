// anan_web.js: run an ANAN model (or any single-input float32 CNN) in the browser with
// onnxruntime-web, on the WASM (CPU) or WebGPU backend. No build step: the page imports
// onnxruntime-web from ./node_modules (npm ci), nothing from a CDN.
//
// Used by index.html (the example page) and by anan_onnx.conformance.web (the tests), so
// that the tests exercise this very code. Preprocessing follows the model's sidecar
// (MODEL.anan.json, written by anan_onnx.sidecar), which onnxruntime-web needs because it
// does not expose the model's metadata_props.
//
// onnxruntime-web 1.30 ships two WebGPU implementations, chosen by what is imported; this
// module loads one, named by its own URL's query (import './anan_web.js?ort=webgpu'):
//   ort=default  dist/ort.min.mjs, what `import 'onnxruntime-web'` gives: the WASM backend
//                and the JavaScript WebGPU backend (JSEP)   [the default]
//   ort=webgpu   dist/ort.webgpu.min.mjs, `import 'onnxruntime-web/webgpu'`: the WASM
//                backend and the native (C++) WebGPU execution provider

export const BUNDLES = { default: 'ort.min.mjs', webgpu: 'ort.webgpu.min.mjs' };
export const ORT_BUILD = new URL(import.meta.url).searchParams.get('ort') ?? 'default';
if (!(ORT_BUILD in BUNDLES)) throw new Error(`unknown onnxruntime-web build '${ORT_BUILD}'`);
export const ort = await import(`./node_modules/onnxruntime-web/dist/${BUNDLES[ORT_BUILD]}`);

export const BACKENDS = ['wasm', 'webgpu'];

// One WASM thread: results then do not depend on the page's cross-origin isolation, and a
// plain `python -m http.server` (no COOP/COEP headers) serves the same as the tests.
ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

/** Whether this browser offers a WebGPU adapter (e.g. Chromium with SwiftShader). */
export async function webgpuAvailable() {
  if (!('gpu' in navigator)) return false;
  try {
    return (await navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/** An onnxruntime-web session for the model at `url` on `backend` ('wasm' or 'webgpu'). */
export async function createSession(url, backend) {
  if (!BACKENDS.includes(backend)) throw new Error(`unknown backend '${backend}'`);
  if (backend === 'webgpu' && !(await webgpuAvailable())) {
    throw new Error('WebGPU is not available in this browser: use the wasm backend');
  }
  return ort.InferenceSession.create(url, { executionProviders: [backend] });
}

/** Runs `session` on float32 `data` of shape `dims`; returns its first output. */
export async function runFirstOutput(session, data, dims) {
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
  const results = await session.run(feeds);
  const output = results[session.outputNames[0]];
  const values = Float32Array.from(await output.getData());
  const shape = Array.from(output.dims);
  for (const tensor of Object.values(results)) tensor.dispose?.();
  return { data: values, dims: shape };
}

/** Where the sidecar of `modelUrl` lives: '.onnx' (and a '.anan' before it) -> '.anan.json'. */
export function sidecarUrl(modelUrl) {
  const url = new URL(modelUrl, document.baseURI);
  const name = url.pathname.split('/').pop();
  const stem = name.replace(/\.(onnx|ort)$/, '').replace(/\.anan$/, '');
  url.pathname = url.pathname.slice(0, url.pathname.length - name.length) + `${stem}.anan.json`;
  return url.href;
}

/** The sidecar document (throws with the URL when missing or not JSON). */
export async function loadSidecar(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`no sidecar at ${url} (HTTP ${response.status})`);
  const sidecar = await response.json();
  if (sidecar.format !== 'anan-sidecar/1') {
    throw new Error(`${url} is not an anan sidecar (format ${JSON.stringify(sidecar.format)})`);
  }
  return sidecar;
}

// --- preprocessing --------------------------------------------------------------------------

/** createImageBitmap options: no colour conversion (Pillow ignores ICC profiles). EXIF
 *  orientation cannot be turned off here (Chromium treats imageOrientation 'none' as
 *  'from-image'): see withoutExifOrientation. */
export const DECODE_OPTIONS = { colorSpaceConversion: 'none', premultiplyAlpha: 'none' };

// The pure preprocessing (no browser API) lives in preprocess.js, shared with Node.js.
export {
  withoutExifOrientation,
  resizeBilinear,
  MAX_IMAGE_PIXELS,
  checkImageSize,
  preprocessSpec,
  preprocess,
} from './preprocess.js';

/** RGBA pixels (Uint8ClampedArray, width*height*4) of an image at its natural size. */
export function rgbaPixels(image) {
  const width = image.naturalWidth ?? image.width;
  const height = image.naturalHeight ?? image.height;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(image, 0, 0);
  return { data: context.getImageData(0, 0, width, height).data, width, height };
}

// --- outputs --------------------------------------------------------------------------------

/**
 * Class probabilities from one image's output row. One value: a sigmoid head, so
 * [1 - p, p]. Several values: used as they are when they already look like probabilities
 * (in [0, 1], summing to 1), otherwise a softmax of logits. Returns { probs, head }.
 */
export function classProbabilities(row) {
  const values = Array.from(row);
  if (values.length === 1) return { probs: [1 - values[0], values[0]], head: 'sigmoid' };
  const sum = values.reduce((s, v) => s + v, 0);
  if (values.every((v) => v >= 0 && v <= 1) && Math.abs(sum - 1) < 1e-4) {
    return { probs: values, head: 'softmax' };
  }
  const top = Math.max(...values);
  const exps = values.map((v) => Math.exp(v - top));
  const total = exps.reduce((s, v) => s + v, 0);
  return { probs: exps.map((v) => v / total), head: 'softmax (applied here to logits)' };
}

/** Class names: the sidecar's, else 'class 0', 'class 1', ... */
export function classNames(sidecar, count) {
  const names = sidecar?.classes;
  if (Array.isArray(names) && names.length === count) return names;
  return Array.from({ length: count }, (_, i) => `class ${i}`);
}

// --- bytes <-> base64 (the tests pass float32 batches through page.evaluate) ---------------

export function base64ToFloat32(text) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

export function float32ToBase64(values) {
  return bytesToBase64(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}

export function bytesToBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}
