// preprocess.js: image bytes and pixels -> the model's input tensor, as anan-onnx does it in
// Python (Pillow): EXIF orientation ignored, the decompression-bomb size limit, Pillow's
// bilinear resize, the sidecar's per-channel scale/offset, channel order and layout.
//
// Pure JavaScript with no import, shared by the web page (anan_web.js, which re-exports it)
// and the Node.js example (examples/node/anan_infer.mjs imports '../web/preprocess.js'), so
// that both runtimes make the tensor with this very code. It lives in examples/web because
// the page is served as a static folder (nothing above it is reachable from the browser).

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
