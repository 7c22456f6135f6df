#!/usr/bin/env node
// anan_infer.mjs: runs an ANAN model (or any single-input float32 ONNX CNN) from Node.js
// with onnxruntime-node, on a float32 .npy batch or on PNG/JPEG images. See README.md.
//
//   node anan_infer.mjs [--json] [-q] [--output NAME] [--threads N] MODEL.onnx BATCH.npy
//   node anan_infer.mjs [--json] [-q] [--output NAME] [--threads N] MODEL.onnx IMAGE...
//
// stdout: one line per image (the values of the model's first output, %.9g), or --json.
// stderr: a short description of the model unless -q; errors as one line
// "anan_infer: error: ..." with exit status 2.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

import { preprocess } from '../web/preprocess.js';
import { decodeImage, imageKind } from './image_files.mjs';

const PROG = 'anan_infer';

const USAGE = `usage: node anan_infer.mjs [options] MODEL.onnx BATCH.npy
       node anan_infer.mjs [options] MODEL.onnx IMAGE...

Runs an ONNX model (e.g. an ANAN model made by anan-onnx convert) with onnxruntime-node
on a float32 .npy batch that is already preprocessed and in the model's layout, or on
PNG/JPEG images, preprocessed as the model's sidecar MODEL.anan.json records (written by
"anan-onnx export MODEL --target web"): the web example's code, ../web/preprocess.js.

options:
  --json           print one JSON array of arrays instead of one line per image
  --output NAME    print this output instead of the model's first output
  --threads N      onnxruntime intra-op threads (default: onnxruntime's choice)
  -q, --quiet      no model description on stderr
  --version        print the onnxruntime-node version and exit
  -h, --help       show this help and exit

stdout holds only results: per image, the output values separated by spaces, printed
with 9 significant digits (%.9g, reads back as the same float32). Errors: one line on
stderr, exit status 2; an output that is NaN or infinite is an error, never printed.
MODEL, BATCH and IMAGE must be regular files of at most 2 GiB (no FIFO, device or
folder); an image of more than 89,478,485 pixels is refused, as anan-onnx refuses it.

onnxruntime-node does not expose a model's custom metadata (metadata_props), so the
anan.* keys are not shown; read them with "anan-onnx inspect MODEL".
`;

/** An error whose message is for the user: reported as one line, exit status 2. */
class UsageError extends Error {}

// --- command line ------------------------------------------------------------------------

function parseArgs(argv) {
  const opts = { json: false, quiet: false, output: null, threads: null, files: [] };
  let onlyFiles = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (onlyFiles || !arg.startsWith('-') || arg === '-') {
      opts.files.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : null;
    const value = () => {
      if (inline !== null) return inline;
      if (i + 1 >= argv.length) throw new UsageError(`${name} needs a value`);
      return argv[++i];
    };
    const noValue = () => {
      if (inline !== null) throw new UsageError(`${name} takes no value`);
    };
    switch (name) {
      case '--':
        onlyFiles = true;
        break;
      case '-h':
      case '--help':
        noValue();
        opts.help = true;
        break;
      case '--version':
        noValue();
        opts.version = true;
        break;
      case '--json':
        noValue();
        opts.json = true;
        break;
      case '-q':
      case '--quiet':
        noValue();
        opts.quiet = true;
        break;
      case '--output':
        opts.output = value();
        break;
      case '--threads': {
        const text = value();
        if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > 1024) {
          throw new UsageError(`--threads must be a whole number from 1 to 1024, got '${text}'`);
        }
        opts.threads = Number(text);
        break;
      }
      default:
        throw new UsageError(`unknown option ${name}: see --help`);
    }
  }
  if (opts.help || opts.version) return opts;
  if (opts.files.length < 2) {
    throw new UsageError(
      `expected MODEL.onnx and BATCH.npy (or image files), got ${opts.files.length} argument(s): ` +
        'node anan_infer.mjs [options] MODEL.onnx BATCH.npy|IMAGE... (see --help)',
    );
  }
  return opts;
}

// --- .npy reading ------------------------------------------------------------------------

const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const SAVE_HINT = 'save it with numpy.save(path, numpy.ascontiguousarray(x, dtype=numpy.float32))';

/** Largest file read, in bytes: an ONNX model (protobuf) cannot exceed 2 GiB, as in
 *  anan-onnx's Python (its weights beyond that live in external data files, which
 *  onnxruntime reads itself); a .npy batch is read whole, so it gets the same bound (Node
 *  cannot read a larger file into one buffer anyway). */
const MAX_FILE_BYTES = 2 ** 31 - 1;

const KINDS = [
  ['isDirectory', 'a folder'],
  ['isFIFO', 'a FIFO (named pipe)'],
  ['isCharacterDevice', 'a character device'],
  ['isBlockDevice', 'a block device'],
  ['isSocket', 'a socket'],
];

/**
 * Opens `file` for reading if it is a regular file of at most MAX_FILE_BYTES; returns
 * { fd, size }. Opened non-blocking, so that a FIFO is refused at once instead of waiting
 * for a writer; a device (/dev/zero) or folder is refused before anything is read.
 */
function openRegular(file, what) {
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    if (e.code === 'ENOENT') throw new UsageError(`${what} ${file} does not exist: check the path`);
    if (e.code === 'EISDIR') throw new UsageError(`${what} ${file} is a folder, not a file`);
    throw new UsageError(
      `${what} ${file} cannot be read (${e.code || e.message}): check the path and its permissions`,
    );
  }
  try {
    const stat = fs.fstatSync(fd);
    const kind = KINDS.find(([test]) => stat[test]());
    if (kind) throw new UsageError(`${what} ${file} is ${kind[1]}, not a regular file`);
    if (!stat.isFile()) throw new UsageError(`${what} ${file} is not a regular file`);
    if (stat.size > MAX_FILE_BYTES) {
      throw new UsageError(
        `${what} ${file} is ${stat.size} bytes, more than the ${MAX_FILE_BYTES} (2 GiB) ` +
          'this program reads: split the batch, or store large weights as ONNX external data',
      );
    }
    return { fd, size: stat.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Fails with a clear message unless `file` is a regular file within MAX_FILE_BYTES. */
function checkFile(file, what) {
  fs.closeSync(openRegular(file, what).fd);
}

/** The bytes of the regular file `file`: exactly the size fstat gave (a file that grows
 *  while read is cut there), never more than MAX_FILE_BYTES. */
function readFileOrFail(file, what) {
  const { fd, size } = openRegular(file, what);
  try {
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const got = fs.readSync(fd, buf, done, size - done, done);
      if (got === 0) break;
      done += got;
    }
    return buf.subarray(0, done);
  } catch (e) {
    throw new UsageError(`${what} ${file} cannot be read (${e.code || e.message}): check the file`);
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses the Python-literal header dict of a .npy file: descr, fortran_order, shape. */
function parseNpyHeader(text, file) {
  const bad = (why) => new UsageError(`${file}: unsupported .npy header (${why}): ${SAVE_HINT}`);
  const body = text.trim();
  if (!body.startsWith('{') || !body.endsWith('}')) throw bad('not a dictionary');
  const descr = /['"]descr['"]\s*:\s*(?:'([^']*)'|"([^"]*)"|(\[))/.exec(body);
  if (!descr) throw bad("no 'descr' string");
  if (descr[3] !== undefined) {
    throw new UsageError(`${file} holds a structured array; ${SAVE_HINT}`);
  }
  const order = /['"]fortran_order['"]\s*:\s*(True|False)\b/.exec(body);
  if (!order) throw bad("no 'fortran_order'");
  const shape = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(body);
  if (!shape) throw bad("no 'shape' tuple");
  const dims = shape[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const d of dims) {
    if (!/^[0-9]+$/.test(d)) throw bad(`shape entry '${d}'`);
  }
  return {
    descr: descr[1] ?? descr[2],
    fortranOrder: order[1] === 'True',
    shape: dims.map(Number),
  };
}

/**
 * Parses the bytes `buf` of the NumPy .npy file `file` (format version 1, 2 or 3) holding a
 * little-endian float32 ('<f4') C-ordered array. Returns { shape, data: Float32Array }.
 */
function parseNpy(buf, file) {
  if (buf.length >= 4 && buf.readUInt32BE(0) === 0x504b0304) {
    throw new UsageError(
      `${file} is an .npz archive, not a .npy file: save one array with numpy.save`,
    );
  }
  if (buf.length < 10 || !buf.subarray(0, 6).equals(NPY_MAGIC)) {
    throw new UsageError(`${file} is not a .npy file (no \\x93NUMPY magic): ${SAVE_HINT}`);
  }
  const major = buf[6];
  const minor = buf[7];
  let headerLen;
  let start;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new UsageError(`${file}: truncated .npy header`);
    headerLen = buf.readUInt32LE(8);
    start = 12;
  } else {
    throw new UsageError(
      `${file}: .npy format version ${major}.${minor} is not supported (1, 2 or 3 are): ${SAVE_HINT}`,
    );
  }
  const dataStart = start + headerLen;
  if (dataStart > buf.length) throw new UsageError(`${file}: truncated .npy header`);
  const header = buf.subarray(start, dataStart).toString(major === 3 ? 'utf8' : 'latin1');
  const { descr, fortranOrder, shape } = parseNpyHeader(header, file);
  if (descr !== '<f4') {
    const hint = /^[<>|=]?[iub]/.test(descr)
      ? 'integer or bool pixels are not preprocessed: scale them as the model expects and save float32'
      : SAVE_HINT;
    throw new UsageError(
      `${file} has dtype '${descr}', only float32 little-endian ('<f4') is read: ${hint}`,
    );
  }
  if (fortranOrder) {
    throw new UsageError(`${file} is Fortran-ordered, only C order is read: ${SAVE_HINT}`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = buf.length - dataStart;
  if (bytes !== count * 4) {
    throw new UsageError(
      `${file}: the shape [${shape.join(', ')}] needs ${count * 4} data bytes but the file has ${bytes}: ` +
        'the file is truncated or damaged',
    );
  }
  // Copy into a fresh, aligned buffer (the data offset need not be a multiple of 4).
  const data = new Float32Array(count);
  if (os.endianness() === 'LE') {
    new Uint8Array(data.buffer).set(buf.subarray(dataStart));
  } else {
    for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(dataStart + 4 * i);
  }
  return { shape, data };
}

// --- checks --------------------------------------------------------------------------------

const showDims = (dims) =>
  `[${dims.map((d) => (typeof d === 'number' ? String(d) : '?')).join(', ')}]`;

function checkShape(shape, input, file) {
  const want = input.shape;
  const fits = `the model input '${input.name}' ${showDims(want)}`;
  if (shape.length !== want.length) {
    throw new UsageError(
      `${file}: input shape [${shape.join(', ')}] does not fit ${fits}: ` +
        `it has ${shape.length} dimensions, the model needs ${want.length}`,
    );
  }
  for (let i = 0; i < want.length; i++) {
    if (typeof want[i] === 'number' && want[i] >= 0 && want[i] !== shape[i]) {
      throw new UsageError(
        `${file}: input shape [${shape.join(', ')}] does not fit ${fits}: ` +
          `dimension ${i} is ${shape[i]}, the model needs ${want[i]}`,
      );
    }
  }
  if (shape.length > 0 && shape[0] === 0) {
    throw new UsageError(`${file} is empty (0 images): pass at least one image`);
  }
}

function checkFinite(data, shape, file) {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const index = [];
      let rest = i;
      for (let d = shape.length - 1; d >= 0; d--) {
        index.unshift(rest % shape[d]);
        rest = Math.floor(rest / shape[d]);
      }
      throw new UsageError(
        `${file} holds ${data[i]} at [${index.join(', ')}]: the model needs finite values`,
      );
    }
  }
}

// --- output --------------------------------------------------------------------------------

/** |v| = digits * 10^exp10 exactly (v finite, nonzero): a double is M * 2^E, M < 2^53. */
function exactDecimal(v) {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(v));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> 52n);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const e2 = (biased === 0 ? 1 : biased) - 1075;
  return e2 >= 0
    ? { digits: (mantissa << BigInt(e2)).toString(), exp10: 0 }
    : { digits: (mantissa * 5n ** BigInt(-e2)).toString(), exp10: e2 };
}

/**
 * C's printf("%.9g", v), digit for digit (exact decimal expansion, ties to even): 9
 * significant digits, enough for a float32 to read back as the same value.
 */
function formatG9(v) {
  const P = 9;
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const sign = v < 0 || Object.is(v, -0) ? '-' : '';
  if (v === 0) return `${sign}0`;
  const { digits, exp10 } = exactDecimal(v);
  let kept = digits.slice(0, P).padEnd(P, '0');
  let exp = exp10 + digits.length - 1; // decimal exponent of the first digit
  const rest = digits.slice(P);
  const first = rest[0] ?? '0';
  const tie = first === '5' && /^0*$/.test(rest.slice(1));
  const up = first > '5' || (first === '5' && (!tie || Number(kept[P - 1]) % 2 === 1));
  if (up) {
    kept = (BigInt(kept) + 1n).toString();
    if (kept.length > P) {
      kept = kept.slice(0, P);
      exp += 1;
    }
  }
  const strip = (s) => s.replace(/0+$/, '');
  if (exp < -4 || exp >= P) {
    const frac = strip(kept.slice(1));
    const e = `${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
    return `${sign}${kept[0]}${frac ? `.${frac}` : ''}e${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${strip(kept)}`;
  const frac = strip(kept.slice(exp + 1));
  return `${sign}${kept.slice(0, exp + 1)}${frac ? `.${frac}` : ''}`;
}

/** The shortest decimal that reads back as the same float32, or null when not finite. */
const jsonNumber = (v) => (Number.isFinite(v) ? Number(v.toPrecision(9)) : null);

function rowsOf(tensor, batch, name) {
  const values = tensor.data;
  if (
    batch === 0 ||
    values.length % batch !== 0 ||
    (tensor.dims.length > 0 && tensor.dims[0] !== batch)
  ) {
    throw new Error(
      `output '${name}' has shape [${tensor.dims.join(', ')}], not one row per image`,
    );
  }
  const per = values.length / batch;
  const rows = [];
  for (let n = 0; n < batch; n++) rows.push(Array.from(values.subarray(n * per, (n + 1) * per)));
  return rows;
}

// --- main ----------------------------------------------------------------------------------

/** The first line of an error message, whitespace-collapsed (onnxruntime's are multi-line). */
function oneLine(e) {
  const text = String(e && e.message !== undefined ? e.message : e).trim();
  const first = text.split('\n').find((l) => l.trim().length > 0) ?? text;
  return first.replace(/\s+/g, ' ').slice(0, 500) || String(e);
}

async function loadOrt() {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    if (e && (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND')) {
      const here = path.dirname(fileURLToPath(import.meta.url));
      throw new UsageError(`onnxruntime-node is not installed: run "npm ci" in ${here}`);
    }
    throw new UsageError(`onnxruntime-node cannot be loaded (${oneLine(e)})`);
  }
}

// --- images --------------------------------------------------------------------------------

/** Where the sidecar of `modelPath` is, as anan_onnx.sidecar.sidecar_path says: '.onnx'
 *  (or '.ort', and a '.anan' before it) replaced by '.anan.json', in the same folder. */
function sidecarPath(modelPath) {
  const stem = path.basename(modelPath).replace(/\.(onnx|ort)$/, '').replace(/\.anan$/, '');
  return path.join(path.dirname(modelPath), `${stem}.anan.json`);
}

/** The sidecar's "preprocess" object; refused when there is no sidecar or it records none. */
function sidecarPreprocess(modelPath) {
  const file = sidecarPath(modelPath);
  const fix =
    `run "anan-onnx export ${modelPath} --target web" and pass the model it writes (its sidecar ` +
    'is beside it), or pass a preprocessed float32 .npy batch';
  if (!fs.existsSync(file)) {
    throw new UsageError(`images need the model's preprocessing, and there is no sidecar ${file}: ${fix}`);
  }
  let document;
  try {
    document = JSON.parse(readFileOrFail(file, 'sidecar').toString('utf8'));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`the sidecar ${file} is not JSON (${oneLine(e)}): ${fix}`);
  }
  if (document === null || typeof document !== 'object' || document.format !== 'anan-sidecar/1') {
    throw new UsageError(`${file} is not an anan sidecar (no "format": "anan-sidecar/1"): ${fix}`);
  }
  if (!document.preprocess) {
    throw new UsageError(`the sidecar ${file} records no preprocessing: ${fix}`);
  }
  return document.preprocess;
}

/** The float32 batch of the image files `files` (bytes already read: `first`, the first
 *  file's), preprocessed by ../web/preprocess.js from the model's sidecar. */
async function imageBatch(modelPath, files, first) {
  const pre = sidecarPreprocess(modelPath);
  const tensors = [];
  for (const [i, file] of files.entries()) {
    const bytes = i === 0 ? first : readFileOrFail(file, 'image file');
    try {
      tensors.push(preprocess(await decodeImage(bytes, file), pre));
    } catch (e) {
      throw new UsageError(oneLine(e));
    }
  }
  const per = tensors[0].data.length;
  const data = new Float32Array(per * tensors.length);
  tensors.forEach((t, i) => data.set(t.data, i * per));
  return { shape: [tensors.length, ...tensors[0].dims.slice(1)], data };
}

/** The batch the command line names: one .npy file, or one or more PNG/JPEG images
 *  (told apart by their first bytes, so that a .npy keeps its own error messages). */
async function readBatch(modelPath, files) {
  const first = readFileOrFail(files[0], files.length === 1 ? 'array file' : 'image file');
  if (imageKind(first) !== null) return imageBatch(modelPath, files, first);
  if (files.length > 1) {
    throw new UsageError(
      `${files[0]} is not a PNG or JPEG image: pass one .npy batch, or PNG/JPEG images only`,
    );
  }
  return parseNpy(first, files[0]);
}

async function main(argv) {
  const opts = parseArgs(argv);
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const ort = await loadOrt();
  if (opts.version) {
    process.stdout.write(`onnxruntime-node ${ort.env.versions.node ?? ort.env.versions.common}\n`);
    return 0;
  }
  const [modelPath, ...inputPaths] = opts.files;
  const npyPath = inputPaths.length === 1 ? inputPaths[0] : `${inputPaths.length} images`;
  checkFile(modelPath, 'model file'); // a clearer message than onnxruntime's
  const batch = await readBatch(modelPath, inputPaths);

  const options = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  };
  if (opts.threads !== null) options.intraOpNumThreads = opts.threads;
  let session;
  try {
    session = await ort.InferenceSession.create(modelPath, options);
  } catch (e) {
    throw new UsageError(
      `onnxruntime cannot load the model ${modelPath} (${oneLine(e)}): check the file`,
    );
  }
  try {
    const inputs = session.inputMetadata;
    if (inputs.length !== 1) {
      throw new UsageError(
        `the model has ${inputs.length} inputs (${session.inputNames.join(', ')}); this program feeds ` +
          'one image input: convert without --tunable',
      );
    }
    const input = inputs[0];
    if (!input.isTensor || input.type !== 'float32') {
      throw new UsageError(
        `the model input '${input.name}' is ${input.type ?? 'not a tensor'}, not float32`,
      );
    }
    const outputName = opts.output ?? session.outputNames[0];
    if (!session.outputNames.includes(outputName)) {
      throw new UsageError(
        `the model has no output '${outputName}': its outputs are ${session.outputNames.join(', ')}`,
      );
    }
    checkShape(batch.shape, input, npyPath);
    checkFinite(batch.data, batch.shape, npyPath);
    const feeds = { [input.name]: new ort.Tensor('float32', batch.data, batch.shape) };
    let results;
    try {
      results = await session.run(feeds, [outputName]);
    } catch (e) {
      throw new UsageError(`onnxruntime failed to run the model (${oneLine(e)})`);
    }
    const rows = rowsOf(results[outputName], batch.shape[0], outputName);
    rows.forEach((row, n) => {
      const bad = row.find((v) => !Number.isFinite(v));
      if (bad !== undefined) {
        // never printed as a result: a NaN is no probability
        throw new UsageError(
          `the model's output '${outputName}' is ${formatG9(bad)} for image ${n} (not a finite ` +
            'number): no result is printed; check the model with anan-onnx verify',
        );
      }
    });
    const text = opts.json
      ? `${JSON.stringify(rows.map((r) => r.map(jsonNumber)))}\n`
      : rows.map((r) => `${r.map(formatG9).join(' ')}\n`).join('');
    if (!opts.quiet) {
      // only after success, so that an error stays the one line on stderr
      const out = session.outputMetadata.find((m) => m.name === outputName);
      process.stderr.write(
        `# ${path.basename(modelPath)}: input '${input.name}' ${showDims(input.shape)} float32 -> ` +
          `output '${outputName}' ${out && out.isTensor ? showDims(out.shape) : ''} ` +
          `(onnxruntime-node ${ort.env.versions.node ?? ort.env.versions.common}; ` +
          'anan.* metadata is not exposed by this binding: anan-onnx inspect shows it)\n',
      );
    }
    process.stdout.write(text);
    return 0;
  } finally {
    await session.release();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`${PROG}: error: ${oneLine(e)}\n`);
    process.exitCode = 2;
  },
);
