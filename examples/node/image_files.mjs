// image_files.mjs: PNG and JPEG files -> RGBA pixels, as anan-onnx's Python (Pillow) reads
// them, for anan_infer.mjs. Decoding is pure JavaScript (pngjs, jpeg-js: pinned in
// package.json); what follows the decoding (resize, scale/offset, channel order, layout) is
// the web page's own code, ../web/preprocess.js.
//
// As in Python: the EXIF Orientation tag is ignored (neither decoder rotates: the stored
// pixels are used), colour profiles are ignored, alpha is dropped (not composited), a 16-bit
// PNG keeps each sample's high byte, and an image of more than MAX_IMAGE_PIXELS is refused
// from its header, before anything is decoded.

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { MAX_IMAGE_PIXELS } from '../web/preprocess.js';

/** pngjs and jpeg-js, imported on first use, so that a .npy batch needs neither. */
async function decoders() {
  try {
    return { PNG: (await import('pngjs')).PNG, jpeg: (await import('jpeg-js')).default };
  } catch (e) {
    if (e && (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND')) {
      const here = path.dirname(fileURLToPath(import.meta.url));
      throw new Error(`the image decoders (pngjs, jpeg-js) are not installed: run "npm ci" in ${here}`);
    }
    throw e;
  }
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The image kinds this program decodes, by the file's first bytes; null for others. */
export function imageKind(bytes) {
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(PNG_MAGIC)) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return null;
}

/** { width, height } from a PNG's IHDR chunk, or null when the header is cut short. */
function pngSize(bytes) {
  if (bytes.length < 24 || bytes.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/** { width, height } from a JPEG's first start-of-frame marker (SOF0..SOF15 but DHT, JPG
 *  and DAC, which share the range), or null when there is none before the scan. */
function jpegSize(bytes) {
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return null; // scan or end before any frame
    const length = bytes.readUInt16BE(at + 2);
    const isFrame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
    if (isFrame) {
      if (at + 9 > bytes.length) return null;
      return { width: bytes.readUInt16BE(at + 7), height: bytes.readUInt16BE(at + 5) };
    }
    at += 2 + length;
  }
  return null;
}

/**
 * Decodes the PNG or JPEG `bytes` (a Buffer) of the file `name`. Returns { data, width,
 * height }, data being RGBA (width*height*4 bytes), the form ../web/preprocess.js takes.
 * Throws an Error whose message is for the user (not an image, cut short, too large).
 */
export async function decodeImage(bytes, name) {
  const kind = imageKind(bytes);
  if (kind === null) {
    throw new Error(`${name} is neither a PNG nor a JPEG image, nor a .npy array: convert it to PNG`);
  }
  const size = kind === 'png' ? pngSize(bytes) : jpegSize(bytes);
  if (size === null || size.width === 0 || size.height === 0) {
    throw new Error(`${name} is a damaged ${kind.toUpperCase()} file (no image size in its header)`);
  }
  if (size.width * size.height > MAX_IMAGE_PIXELS) {
    throw new Error(
      `image ${name} is too large (${size.width}x${size.height}): more than ` +
        `${MAX_IMAGE_PIXELS.toLocaleString('en')} pixels, refused as a possible decompression ` +
        'bomb, as anan-onnx does; resize it first',
    );
  }
  const { PNG, jpeg } = await decoders();
  try {
    return kind === 'png' ? decodePng(PNG, bytes) : decodeJpeg(jpeg, bytes);
  } catch (e) {
    throw new Error(`${name} cannot be decoded as ${kind.toUpperCase()} (${e.message}): check the file`);
  }
}

function decodePng(PNG, bytes) {
  // skipRescale keeps 16-bit samples whole, so that the high byte is taken as Pillow does
  // (pngjs would round v * 255 / 65535); lower depths are scaled by pngjs, as by Pillow.
  const sixteen = bytes.length > 24 && bytes[24] === 16;
  const png = PNG.sync.read(bytes, { skipRescale: sixteen });
  const data = sixteen ? Uint8Array.from(png.data, (v) => v >> 8) : png.data;
  return { data, width: png.width, height: png.height };
}

function decodeJpeg(jpeg, bytes) {
  // tolerantDecoding off: a cut-short file is refused, as Pillow refuses it. The memory
  // bound fits the largest image allowed (MAX_IMAGE_PIXELS, RGBA plus its components).
  const image = jpeg.decode(bytes, {
    useTArray: true,
    formatAsRGBA: true,
    tolerantDecoding: false,
    maxResolutionInMP: Math.ceil(MAX_IMAGE_PIXELS / 1e6),
    maxMemoryUsageInMB: 2048,
  });
  return { data: image.data, width: image.width, height: image.height };
}
