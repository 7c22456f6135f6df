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

/** RGBA pixels (Uint8ClampedArray, width*height*4) of an image at its natural size. */
export function rgbaPixels(image) {
  const width = image.naturalWidth ?? image.width;
  const height = image.naturalHeight ?? image.height;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(image, 0, 0);
  return { data: context.getImageData(0, 0, width, height).data, width, height };
}

/**
 * Resizes 8-bit pixels (channels-last) like Pillow's Image.resize(..., BILINEAR), the filter
 * anan-onnx uses in Python: a triangle filter whose support grows with the reduction (so a
 * downscale averages, it does not skip pixels), horizontal pass then vertical pass, each
 * rounded to 8 bits. Canvas drawImage would use the browser's own filter instead.
 */
export function resizeBilinear(src, width, height, channels, outWidth, outHeight) {
  const horizontal = resamplePass(src, width, height, channels, outWidth, true);
  return resamplePass(horizontal, outWidth, height, channels, outHeight, false);
}

function resamplePass(src, width, height, channels, outSize, alongX) {
  const inSize = alongX ? width : height;
  if (inSize === outSize) return src;
  const out = new Uint8ClampedArray((alongX ? outSize * height : width * outSize) * channels);
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support is 1
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const first = Math.max(0, Math.trunc(centre - support + 0.5));
    const last = Math.min(inSize, Math.trunc(centre + support + 0.5));
    const weights = [];
    let total = 0;
    for (let i = first; i < last; i++) {
      const w = Math.max(0, 1 - Math.abs((i - centre + 0.5) / filterScale));
      weights.push(w);
      total += w;
    }
    for (let k = 0; k < weights.length; k++) weights[k] /= total || 1;
    const lines = alongX ? height : width;
    for (let line = 0; line < lines; line++) {
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let k = 0; k < weights.length; k++) {
          const i = first + k;
          const at = alongX ? (line * width + i) * channels + c : (i * width + line) * channels + c;
          sum += src[at] * weights[k];
        }
        const to = alongX ? (line * outSize + o) * channels + c : (o * width + line) * channels + c;
        out[to] = Math.round(sum); // Uint8ClampedArray clamps to 0..255
      }
    }
  }
  return out;
}

/**
 * The model input for one image: RGB (or luma for 1 channel), resized to the sidecar's
 * height x width, x = pixel * scale + offset, in its layout (NHWC or NCHW).
 * Returns { data: Float32Array, dims, pixels } (pixels: the resized 8-bit image, HWC).
 */
export function preprocess(rgba, preprocess) {
  const { layout, height, width, channels, scale, offset } = preprocess;
  const source = new Uint8ClampedArray(rgba.width * rgba.height * channels);
  for (let p = 0; p < rgba.width * rgba.height; p++) {
    const [r, g, b] = [rgba.data[4 * p], rgba.data[4 * p + 1], rgba.data[4 * p + 2]];
    if (channels === 3) source.set([r, g, b], 3 * p);
    // Pillow's convert('L'): L = R * 299/1000 + G * 587/1000 + B * 114/1000
    else source[p] = Math.round((r * 299 + g * 587 + b * 114) / 1000);
  }
  const pixels = resizeBilinear(source, rgba.width, rgba.height, channels, width, height);
  const data = new Float32Array(height * width * channels);
  const f = Math.fround;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        // float32 arithmetic, as numpy does it in anan_onnx._images
        const value = f(f(f(pixels[(y * width + x) * channels + c]) * f(scale)) + f(offset));
        const at =
          layout === 'NCHW' ? (c * height + y) * width + x : (y * width + x) * channels + c;
        data[at] = value;
      }
    }
  }
  const dims = layout === 'NCHW' ? [1, channels, height, width] : [1, height, width, channels];
  return { data, dims, pixels };
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
