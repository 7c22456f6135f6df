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

/** The image file's bytes with its EXIF Orientation tag set to 1 (as stored), so that the
 *  browser decodes the stored pixels unrotated, as Pillow (anan-onnx in Python, and Keras'
 *  load_img) does. Handles JPEG (APP1 Exif) and PNG (eXIf, CRC rewritten); other files, and
 *  files without the tag, are returned unchanged. The input is not modified. */
export function withoutExifOrientation(input) {
  const bytes = new Uint8Array(input); // a copy
  const view = new DataView(bytes.buffer);
  if (bytes.length > 4 && view.getUint16(0) === 0xffd8) {
    let at = 2;
    while (at + 4 <= bytes.length && bytes[at] === 0xff) {
      const marker = bytes[at + 1];
      if (marker === 0xda || marker === 0xd9) break; // start of scan / end: no more headers
      const length = view.getUint16(at + 2);
      const exif = at + 4;
      if (marker === 0xe1 && String.fromCharCode(...bytes.subarray(exif, exif + 6)) === 'Exif\0\0') {
        clearOrientation(view, exif + 6, Math.min(at + 2 + length, bytes.length));
      }
      at += 2 + length;
    }
  } else if (bytes.length > 8 && view.getUint32(0) === 0x89504e47) {
    let at = 8;
    while (at + 12 <= bytes.length) {
      const length = view.getUint32(at);
      const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
      const end = at + 8 + length;
      if (end + 4 > bytes.length) break;
      if (type === 'eXIf' && clearOrientation(view, at + 8, end)) {
        view.setUint32(end, crc32(bytes.subarray(at + 4, end)));
      }
      if (type === 'IEND') break;
      at = end + 4;
    }
  }
  return bytes;
}

/** Sets IFD0's Orientation (tag 0x0112, one SHORT) of the TIFF block at [start, end) to 1;
 *  whether it changed anything. Every offset is bounds-checked: the file is untrusted. */
function clearOrientation(view, start, end) {
  if (end - start < 8) return false;
  const order = view.getUint16(start);
  if (order !== 0x4949 && order !== 0x4d4d) return false; // 'II' or 'MM'
  const little = order === 0x4949;
  if (view.getUint16(start + 2, little) !== 42) return false;
  const ifd = start + view.getUint32(start + 4, little);
  if (ifd + 2 > end) return false;
  const count = view.getUint16(ifd, little);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (entry + 12 > end) return false;
    if (view.getUint16(entry, little) === 0x0112 && view.getUint16(entry + 2, little) === 3) {
      if (view.getUint16(entry + 8, little) === 1) return false;
      view.setUint16(entry + 8, 1, little);
      return true;
    }
  }
  return false;
}

let crcTable = null;

/** CRC-32 (ISO-HDLC, the PNG chunk checksum) of `bytes`. */
function crc32(bytes) {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of bytes) crc = crcTable[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

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

/** Largest image decoded, in pixels (width x height): anan-onnx's MAX_IMAGE_PIXELS
 *  (Pillow's decompression-bomb threshold), so that a page refuses what Python refuses. */
export const MAX_IMAGE_PIXELS = 89_478_485;

/** Throws unless an image of width x height is within MAX_IMAGE_PIXELS. */
export function checkImageSize(width, height, name = 'the image') {
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new Error(
      `${name} is too large (${width}x${height} pixels): more than ` +
        `${MAX_IMAGE_PIXELS.toLocaleString('en')} pixels, refused as a possible ` +
        'decompression bomb, as anan-onnx does; resize it first',
    );
  }
}

/** A sidecar number or per-channel list as `channels` float32 values (throws otherwise). */
function perChannel(value, channels, what) {
  const values = Array.isArray(value) ? value : [value];
  if (values.length !== 1 && values.length !== channels) {
    throw new Error(
      `the sidecar's ${what} has ${values.length} values but the model has ${channels} ` +
        'channels: it must be one number or one per channel',
    );
  }
  if (!values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new Error(`the sidecar's ${what} ${JSON.stringify(value)} is not a finite number or list`);
  }
  return Array.from({ length: channels }, (_, c) => Math.fround(values.length === 1 ? values[0] : values[c]));
}

/**
 * Checks the sidecar's "preprocess" object and returns it with defaults filled in:
 * scale/offset as per-channel float32 lists, channel_order 'RGB' or 'BGR' (absent: RGB),
 * resize 'bilinear' and aspect 'stretch' (absent: those). Any other resize or aspect is
 * refused: this page would not make the tensor anan-onnx's Python makes.
 */
export function preprocessSpec(pre) {
  if (!pre) throw new Error('the sidecar records no preprocessing (its "preprocess" is null)');
  const { layout, height, width, channels } = pre;
  if (!['NHWC', 'NCHW'].includes(layout)) throw new Error(`unknown layout ${JSON.stringify(layout)}`);
  if (![1, 3].includes(channels)) throw new Error(`channels must be 1 or 3, got ${JSON.stringify(channels)}`);
  const order = String(pre.channel_order ?? 'RGB').toUpperCase();
  if (!['RGB', 'BGR'].includes(order)) {
    throw new Error(`the sidecar's channel_order ${JSON.stringify(pre.channel_order)} is neither RGB nor BGR`);
  }
  for (const [key, supported] of [['resize', 'bilinear'], ['aspect', 'stretch']]) {
    const value = pre[key] ?? supported;
    if (String(value).toLowerCase() !== supported) {
      throw new Error(
        `the sidecar's ${key} ${JSON.stringify(value)} is not supported by this page (only ` +
          `${supported}): its input would differ from anan-onnx's; use anan-onnx predict`,
      );
    }
  }
  return {
    layout, height, width, channels,
    scale: perChannel(pre.scale, channels, 'scale'),
    offset: perChannel(pre.offset ?? 0, channels, 'offset'),
    channelOrder: channels === 3 ? order : 'RGB', // ignored for one channel
    from: pre.preprocess_from ?? null,
  };
}

/**
 * The model input for one image: RGB (reordered to BGR when the sidecar says so; luma for
 * 1 channel), resized to the sidecar's height x width, x[c] = pixel[c] * scale[c] +
 * offset[c], in its layout (NHWC or NCHW).
 * Returns { data: Float32Array, dims, pixels } (pixels: the resized 8-bit image, HWC, RGB).
 */
export function preprocess(rgba, sidecarPreprocess) {
  const { layout, height, width, channels, scale, offset, channelOrder } =
    preprocessSpec(sidecarPreprocess);
  checkImageSize(rgba.width, rgba.height);
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
  const bgr = channelOrder === 'BGR';
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        // model channel c is the image's channel c (RGB) or 2 - c (BGR)
        const pixel = pixels[(y * width + x) * channels + (bgr ? 2 - c : c)];
        // float32 arithmetic, as numpy does it in anan_onnx.runtime.image_files
        const value = f(f(f(pixel) * scale[c]) + offset[c]);
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
