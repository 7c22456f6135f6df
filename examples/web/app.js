// app.js: the example page. Loads ?model=URL (default catsdogs.anan.onnx) and its sidecar
// (MODEL.anan.json beside it), then classifies the image the user picks or drops.
// ?backend=webgpu starts on WebGPU; ?ort=webgpu uses onnxruntime-web's native WebGPU
// execution provider instead of the default build's (see anan_web.js). All the model work
// is in anan_web.js.

const query = new URLSearchParams(location.search);
const build = query.get('ort') ?? 'default';
let anan;
try {
  anan = await import(`./anan_web.js?ort=${encodeURIComponent(build)}`);
} catch (error) {
  window.ananApp = { error: `cannot load onnxruntime-web (${build}): ${error?.message ?? error}` };
  document.getElementById('status').textContent = window.ananApp.error;
  document.body.dataset.state = 'error';
  throw error;
}

const modelUrl = query.get('model') || 'catsdogs.anan.onnx';

/** The page's state; the tests read it (window.ananApp) to compare with Python. */
const state = {
  modelUrl,
  ortBuild: anan.ORT_BUILD,
  backend: anan.BACKENDS.includes(query.get('backend')) ? query.get('backend') : 'wasm',
  sidecar: null,
  session: null,
  rgba: null,
  result: null,
  error: null,
  runs: 0,
};
window.ananApp = state;

const $ = (id) => document.getElementById(id);

function setPhase(phase) {
  document.body.dataset.state = phase; // loading | ready | running | done | error
}

function showStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

function fail(error) {
  state.error = String(error?.message ?? error);
  showStatus(state.error, true);
  setPhase('error');
}

function fillTable(table, rows) {
  table.replaceChildren(
    ...rows.map(([key, value]) => {
      const tr = document.createElement('tr');
      for (const text of [key, value]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
}

function showModel(sidecar) {
  $('model-name').textContent = sidecar.model ?? modelUrl;
  const p = sidecar.params;
  const md = sidecar.metadata ?? {};
  fillTable(
    $('params'),
    p
      ? [
          ['k (presentations)', p.k],
          ['μ (trigger level)', p.mu],
          ['a (excitation)', p.a],
          ['b (inhibition)', p.b],
          ['rule / counter', `${p.rule} / ${p.counter}`],
          ['signal / reduce', `${p.signal} / ${p.reduce}`],
          ['modulated layer', md.target_layer ?? '?'],
          ['graph', `steps ${md.steps ?? '?'}, batch ${md.batch ?? '?'}`],
        ]
      : [['model', 'a base CNN (no ANAN parameters)']],
  );
  const pre = anan.preprocessSpec(sidecar.preprocess); // throws on what the page cannot honour
  const input = sidecar.inputs?.[0];
  const list = (values) => (new Set(values).size === 1 ? [values[0]] : values)
    .map((v) => Number(v.toPrecision(6))).join(', ');
  const rows = [
    ['input', input ? `${input.name} [${input.shape.map((d) => d ?? '?').join(', ')}]` : '?'],
    ['layout', pre.layout],
    ['size', `${pre.height} × ${pre.width} × ${pre.channels}`],
    ['channel order', pre.channels === 3 ? pre.channelOrder : 'grey'],
    ['x[c] =', `pixel[c] × (${list(pre.scale)}) + (${list(pre.offset)})`],
    ['resize', 'bilinear (stretch), as Pillow (anan_web.js)'],
    ['EXIF orientation', 'ignored, as anan-onnx in Python'],
  ];
  if (pre.from) rows.push(['preprocessing from', JSON.stringify(pre.from)]);
  fillTable($('preprocess'), rows);
}

async function openSession() {
  setPhase('loading');
  showStatus(`loading the model on ${state.backend}…`);
  if (state.session) await state.session.release();
  state.session = null;
  state.session = await anan.createSession(modelUrl, state.backend);
  state.runs = 0;
  showStatus(`model loaded on ${state.backend}`);
}

function drawResized(pixels, pre) {
  const canvas = $('resized');
  canvas.width = pre.width;
  canvas.height = pre.height;
  canvas.style.width = `${Math.min(200, pre.width * 2)}px`;
  const image = new ImageData(pre.width, pre.height);
  for (let p = 0; p < pre.width * pre.height; p++) {
    for (let c = 0; c < 3; c++) image.data[4 * p + c] = pixels[p * pre.channels + (pre.channels === 3 ? c : 0)];
    image.data[4 * p + 3] = 255;
  }
  canvas.getContext('2d').putImageData(image, 0, 0);
  $('resized-caption').textContent = `model input ${pre.width} × ${pre.height}`;
}

function showResult(probs, head, names) {
  const best = probs.indexOf(Math.max(...probs));
  $('results').replaceChildren(
    ...probs.map((p, i) => {
      const row = document.createElement('div');
      row.className = i === best ? 'row top' : 'row';
      row.dataset.class = names[i];
      row.dataset.value = String(p); // full precision, for the tests
      row.innerHTML = '<span class="name"></span><div class="bar"><span></span></div><span class="value"></span>';
      row.querySelector('.name').textContent = names[i];
      row.querySelector('.bar span').style.width = `${(100 * p).toFixed(1)}%`;
      row.querySelector('.value').textContent = p.toFixed(6);
      return row;
    }),
  );
  $('head-note').textContent = `output head: ${head}`;
  $('prediction').innerHTML = 'Prediction: <strong></strong>';
  $('prediction').querySelector('strong').textContent = `${names[best]} (${(100 * probs[best]).toFixed(1)}%)`;
}

async function classify() {
  if (!state.rgba) {
    setPhase('ready');
    return;
  }
  setPhase('running');
  const pre = state.sidecar.preprocess;
  const { data, dims, pixels } = anan.preprocess(state.rgba, pre);
  drawResized(pixels, pre);
  const start = performance.now();
  const output = await anan.runFirstOutput(state.session, data, dims);
  const ms = performance.now() - start;
  const bad = output.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    // never shown as a prediction: a NaN is no probability
    throw new Error(
      `the model's output ${bad} is ${output.data[bad]} (not a finite number): no prediction; ` +
        'check the model with anan-onnx verify',
    );
  }
  const { probs, head } = anan.classProbabilities(output.data);
  const names = anan.classNames(state.sidecar, probs.length);
  showResult(probs, head, names);
  state.result = {
    output: Array.from(output.data),
    probs,
    names,
    head,
    ms,
    backend: state.backend,
    input: anan.float32ToBase64(data),
    dims,
    pixels: anan.bytesToBase64(pixels), // base64 of the resized 8-bit image (HWC)
  };
  const first = state.runs === 0 ? ' (first run of this session: includes one-time setup)' : '';
  state.runs += 1;
  showStatus(`${state.backend}: ${ms.toFixed(1)} ms for one image${first}`);
  setPhase('done');
}

/** The image's size from its header (an <img> decodes lazily), refused above the limit
 *  before the page decodes a single pixel. */
async function checkSize(file) {
  const url = URL.createObjectURL(file); // the header's size: orientation does not matter
  try {
    const image = new Image();
    image.src = url;
    await new Promise((resolve, reject) => {
      image.onload = resolve;
      image.onerror = () => reject(new Error('not an image this browser can read'));
    });
    anan.checkImageSize(image.naturalWidth, image.naturalHeight, file.name);
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function loadImage(file) {
  try {
    await checkSize(file);
    // As anan-onnx in Python (Pillow): no colour-profile conversion (ICC profiles ignored)
    // and no EXIF orientation (the stored pixels, unrotated), so that a phone photo gives
    // the same tensor here as with anan-onnx predict (docs/deployment.md).
    const bytes = anan.withoutExifOrientation(new Uint8Array(await file.arrayBuffer()));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: file.type }), anan.DECODE_OPTIONS);
    state.rgba = anan.rgbaPixels(bitmap);
    $('original').src = URL.createObjectURL(file);
    $('original-caption').textContent = `${file.name} (${bitmap.width} × ${bitmap.height})`;
    bitmap.close();
    await classify();
  } catch (error) {
    state.result = null;
    $('prediction').textContent = '';
    $('results').replaceChildren();
    fail(`cannot classify ${file.name}: ${error?.message ?? error}`);
  }
}

function showBuild() {
  const names = { default: "default build, JSEP WebGPU", webgpu: "'/webgpu' build, native WebGPU EP" };
  $('build').textContent = `onnxruntime-web ${anan.ort.env.versions?.web ?? ''} (${names[anan.ORT_BUILD]})`;
}

function wireInputs() {
  $('file').addEventListener('change', (event) => {
    const [file] = event.target.files;
    if (file) loadImage(file);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const [file] = event.dataTransfer.files;
    if (file) loadImage(file);
  });
  const select = $('backend');
  select.value = state.backend;
  select.addEventListener('change', async () => {
    state.backend = select.value;
    try {
      await openSession();
      await classify();
    } catch (error) {
      fail(error);
    }
  });
}

async function main() {
  showBuild();
  wireInputs();
  if (!(await anan.webgpuAvailable())) {
    $('backend').querySelector('option[value=webgpu]').disabled = true;
    if (state.backend === 'webgpu') state.backend = $('backend').value = 'wasm';
  }
  try {
    state.sidecar = await anan.loadSidecar(anan.sidecarUrl(modelUrl));
  } catch (error) {
    fail(`${error.message}: write it with anan-onnx export --target web (see README.md)`);
    return;
  }
  try {
    showModel(state.sidecar);
  } catch (error) {
    fail(`cannot use this model's preprocessing: ${error.message}`);
    return;
  }
  const batch = state.sidecar.inputs?.[0]?.shape?.[0];
  if (Number.isInteger(batch) && batch !== 1) {
    fail(`the model's batch is fixed to ${batch}; this page feeds one image: export it with a dynamic batch`);
    return;
  }
  try {
    await openSession();
    await classify();
  } catch (error) {
    fail(error);
  }
}

main();
